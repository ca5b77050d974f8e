/// Text from a client or a file cut to a bounded length before it goes into a status message,
/// a log line or a metric: `abc…(+1234 characters)`.
public struct BoundedText: Sendable, CustomStringConvertible {
  public let text: String
  public let limit: Int

  public init(_ text: String, limit: Int = BoundedText.defaultLimit) {
    self.text = text
    self.limit = limit
  }

  public static let defaultLimit = 128

  public var description: String {
    guard self.text.count > self.limit else { return self.text }
    return "\(self.text.prefix(self.limit))…(+\(self.text.count - self.limit) characters)"
  }
}
