/// A configuration value that cannot be used: names the key, the value and what is allowed.
public struct ConfigurationError: Error, Equatable, CustomStringConvertible {
  public let key: String
  /// The value, cut short if it was long.
  public let value: String
  public let allowed: String

  public init(key: String, value: String, allowed: String) {
    self.key = key
    self.value = BoundedText(value, limit: Self.shownLength).description
    self.allowed = allowed
  }

  private init(key: String, shortenedValue: String, allowed: String) {
    self.key = key
    self.value = shortenedValue
    self.allowed = allowed
  }

  /// The same error under another name for its key, its value not shortened twice.
  public func renamed(_ key: String) -> Self {
    Self(key: key, shortenedValue: self.value, allowed: self.allowed)
  }

  static let shownLength = 256

  public var description: String { "invalid \(self.key) \"\(self.value)\": expected \(self.allowed)" }
}
