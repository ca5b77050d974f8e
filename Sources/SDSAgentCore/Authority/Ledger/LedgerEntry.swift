import Crypto
import Foundation

/// One row of the issuance ledger: a certificate signed, or a checkpoint standing for the rows
/// pruned before it. Its hash covers the previous row's hash, so a changed, reordered or deleted
/// row breaks the chain from there on.
package struct LedgerEntry: Sendable, Equatable {
  package enum Kind: String, Sendable, Equatable {
    case issuance
    /// Rows up to `prunedThrough` were removed; `prunedHash` was the hash of the last of them.
    case checkpoint
  }

  package var sequence: Int64
  package var kind: Kind
  /// The leaf's serial, hex as printed (empty for a checkpoint).
  package var serial: String
  package var spiffeID: String
  /// Who asked: the token's subject.
  package var caller: String
  /// The node identity that asked on the workload's behalf, when one did.
  package var impersonatedBy: String?
  package var replica: String
  package var notBefore: Date
  package var notAfter: Date
  package var prunedThrough: Int64?
  package var prunedHash: [UInt8]?
  package var previousHash: [UInt8]
  package var hash: [UInt8]

  package init(
    sequence: Int64, kind: Kind, serial: String, spiffeID: String, caller: String, impersonatedBy: String?,
    replica: String, notBefore: Date, notAfter: Date, prunedThrough: Int64?, prunedHash: [UInt8]?,
    previousHash: [UInt8], hash: [UInt8]
  ) {
    self.sequence = sequence
    self.kind = kind
    self.serial = serial
    self.spiffeID = spiffeID
    self.caller = caller
    self.impersonatedBy = impersonatedBy
    self.replica = replica
    self.notBefore = notBefore
    self.notAfter = notAfter
    self.prunedThrough = prunedThrough
    self.prunedHash = prunedHash
    self.previousHash = previousHash
    self.hash = hash
  }

  /// The hash the first row of a ledger follows.
  package static let genesisHash = [UInt8](repeating: 0, count: SHA256.byteCount)

  /// The row's hash as it should be: SHA-256 over a domain label, the previous hash and every
  /// field, each length-prefixed so no two rows encode alike.
  package var computedHash: [UInt8] {
    var hasher = SHA256()
    var encoder = LedgerEntryEncoder()
    encoder.append("sds-agent issuance ledger v1")
    encoder.append(self.previousHash)
    encoder.append(self.sequence)
    encoder.append(self.kind.rawValue)
    encoder.append(self.serial)
    encoder.append(self.spiffeID)
    encoder.append(self.caller)
    encoder.append(self.impersonatedBy ?? "")
    encoder.append(self.replica)
    encoder.append(Int64(self.notBefore.timeIntervalSince1970.rounded(.down)))
    encoder.append(Int64(self.notAfter.timeIntervalSince1970.rounded(.down)))
    encoder.append(self.prunedThrough ?? -1)
    encoder.append(self.prunedHash ?? [])
    hasher.update(data: encoder.bytes)
    return Array(hasher.finalize())
  }
}

/// Length-prefixed, big-endian fields: the one encoding a row's hash is taken over.
private struct LedgerEntryEncoder {
  var bytes: [UInt8] = []

  mutating func append(_ value: Int64) {
    withUnsafeBytes(of: value.bigEndian) { self.bytes.append(contentsOf: $0) }
  }

  mutating func append(_ data: [UInt8]) {
    self.append(Int64(data.count))
    self.bytes.append(contentsOf: data)
  }

  mutating func append(_ text: String) {
    self.append(Array(text.utf8))
  }
}
