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

  static let shownLength = 256

  public var description: String { "invalid \(self.key) \"\(self.value)\": expected \(self.allowed)" }
}
