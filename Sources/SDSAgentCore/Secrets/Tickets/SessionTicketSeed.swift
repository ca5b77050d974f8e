import Crypto
import Foundation

/// The secret every gateway of a fleet shares, from which each epoch's ticket keys are derived:
/// at least 32 bytes, used as it is read (a trailing newline is part of it).
package struct SessionTicketSeed: Sendable, Equatable {
  let material: SymmetricKey

  package static let minimumLength = 32
  /// Longer seeds add nothing; a longer file is refused rather than read whole.
  package static let maximumLength = 4096

  package init(_ bytes: some Collection<UInt8>) throws(SessionTicketSeedError) {
    guard bytes.count >= Self.minimumLength else { throw .tooShort(bytes.count) }
    guard bytes.count <= Self.maximumLength else { throw .tooLong(bytes.count) }
    self.material = SymmetricKey(data: Array(bytes))
  }

  package static func == (lhs: Self, rhs: Self) -> Bool {
    lhs.material == rhs.material
  }
}

/// Why a seed cannot be used.
package enum SessionTicketSeedError: Error, Sendable, Equatable {
  case tooShort(Int)
  case tooLong(Int)
  /// The file can be read or written by others than its owner (mode in octal).
  case permissive(UInt32)
  case missing
  case unreadable(String)

  /// A bounded reason, for a log line or a metric label.
  package var reason: String {
    switch self {
    case .tooShort: return "too_short"
    case .tooLong: return "too_long"
    case .permissive: return "permissive_mode"
    case .missing: return "missing"
    case .unreadable: return "unreadable"
    }
  }

  package var explanation: String {
    switch self {
    case .tooShort(let count):
      return "it holds \(count) bytes; a seed needs at least \(SessionTicketSeed.minimumLength)"
    case .tooLong(let count):
      return "it holds \(count) bytes; a seed is at most \(SessionTicketSeed.maximumLength)"
    case .permissive(let mode):
      return "its mode is \(String(mode, radix: 8)); a seed must be readable by its owner only (chmod 600)"
    case .missing: return "it does not exist"
    case .unreadable(let why): return "it cannot be read: \(why)"
    }
  }
}
