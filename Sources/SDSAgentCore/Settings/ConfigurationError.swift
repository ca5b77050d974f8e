/// A configuration value that cannot be used: names the key, the value and what is allowed.
package struct ConfigurationError: AgentFailure, Equatable {
  package enum Code: String, Sendable {
    case invalidValue = "invalid_value"
  }

  package let key: String
  /// The value, cut short if it was long.
  package let value: String
  package let allowed: String
  /// Why the value was refused, when another error said so (already named in `allowed`).
  package let cause: (any Error)?

  package init(key: String, value: String, allowed: String, cause: (any Error)? = nil) {
    self.key = key
    self.value = BoundedText(value, limit: Self.shownLength).description
    self.allowed = allowed
    self.cause = cause
  }

  private init(key: String, shortenedValue: String, allowed: String, cause: (any Error)?) {
    self.key = key
    self.value = shortenedValue
    self.allowed = allowed
    self.cause = cause
  }

  /// The same error under another name for its key, its value not shortened twice.
  package func renamed(_ key: String) -> Self {
    Self(key: key, shortenedValue: self.value, allowed: self.allowed, cause: self.cause)
  }

  static let shownLength = 256

  package var code: Code { .invalidValue }
  package var message: String { "invalid \(self.key) \"\(self.value)\"" }
  package var remedy: String? { "expected \(self.allowed)" }
  package var description: String { "\(self.message): expected \(self.allowed)" }

  /// Two errors are the same when they name the same key, value and fix; the cause does not count.
  package static func == (lhs: Self, rhs: Self) -> Bool {
    lhs.key == rhs.key && lhs.value == rhs.value && lhs.allowed == rhs.allowed
  }
}
