/// A configuration value that cannot be used: names the key, the value and what is allowed.
public struct ConfigurationError: Error, Equatable, CustomStringConvertible {
  public let key: String
  public let value: String
  public let allowed: String

  public init(key: String, value: String, allowed: String) {
    self.key = key
    self.value = value
    self.allowed = allowed
  }

  public var description: String { "invalid \(self.key) \"\(self.value)\": expected \(self.allowed)" }
}
