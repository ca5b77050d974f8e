import SDSAgentCore

/// Why `ca serve --datastore` cannot start or keep its shared state; each names the setting to fix.
package struct DatastoreError: AgentFailure {
  package enum Code: String, Sendable {
    /// `--datastore` cannot be reached, or refused the login.
    case unreachable
    /// `--key-encryption-key` is missing, unreadable, not private or not 32 bytes.
    case keyEncryptionKeyFile = "key_encryption_key_file"
    /// The datastore's keys were sealed with another key-encryption key.
    case wrongKeyEncryptionKey = "wrong_key_encryption_key"
    /// A key row does not open for the certificate it is stored with: swapped or altered.
    case keyRowTampered = "key_row_tampered"
    /// The datastore's schema is newer than this binary knows.
    case newerSchema = "newer_schema"
    /// The operator's CA files are not the datastore's CA.
    case conflict
    /// A query failed or a row could not be read.
    case query
  }

  package let code: Code
  package let message: String
  package let remedy: String?
  package let cause: (any Error)?

  package init(_ code: Code, _ message: String, remedy: String? = nil, cause: (any Error)? = nil) {
    self.code = code
    self.message = message
    self.remedy = remedy
    self.cause = cause
  }

  package var description: String { self.failureText }
}
