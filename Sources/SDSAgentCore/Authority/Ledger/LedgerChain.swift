import Foundation

/// The rules of the issuance ledger's hash chain: how the next row is sealed, how old rows are
/// pruned behind a checkpoint, and how a chain read back is verified.
package enum LedgerChain {
  /// What an issuance row records; the chain adds its sequence and hashes.
  package struct Issuance: Sendable, Equatable {
    package var serial: String
    package var spiffeID: String
    package var caller: String
    package var impersonatedBy: String?
    package var replica: String
    package var notBefore: Date
    package var notAfter: Date

    package init(
      serial: String, spiffeID: String, caller: String, impersonatedBy: String?, replica: String,
      notBefore: Date, notAfter: Date
    ) {
      self.serial = serial
      self.spiffeID = spiffeID
      self.caller = caller
      self.impersonatedBy = impersonatedBy
      self.replica = replica
      self.notBefore = notBefore
      self.notAfter = notAfter
    }
  }

  /// The row that follows `head` (the last row of the ledger, `nil` when it is empty).
  package static func sealing(_ issuance: Issuance, after head: LedgerEntry?) -> LedgerEntry {
    var entry = LedgerEntry(
      sequence: (head?.sequence ?? 0) + 1, kind: .issuance, serial: issuance.serial,
      spiffeID: issuance.spiffeID, caller: issuance.caller, impersonatedBy: issuance.impersonatedBy,
      replica: issuance.replica, notBefore: issuance.notBefore, notAfter: issuance.notAfter,
      prunedThrough: nil, prunedHash: nil, previousHash: head?.hash ?? LedgerEntry.genesisHash, hash: [])
    entry.hash = entry.computedHash
    return entry
  }

  /// What pruning `rows` (in sequence order) at `now` removes and the checkpoint row it appends:
  /// the longest run from the start whose certificates expired `retention` ago or earlier, so the
  /// rows that stay are contiguous. `nil` when nothing is old enough.
  package static func pruning(
    _ rows: [LedgerEntry], now: Date, retention: TimeInterval, replica: String
  ) -> (removedThrough: Int64, checkpoint: LedgerEntry)? {
    let cutoff = now.addingTimeInterval(-retention)
    guard let head = rows.last else { return nil }
    let removable = rows.dropLast().prefix { $0.kind == .checkpoint || $0.notAfter <= cutoff }
    guard let last = removable.last else { return nil }
    var checkpoint = LedgerEntry(
      sequence: head.sequence + 1, kind: .checkpoint, serial: "", spiffeID: "", caller: "",
      impersonatedBy: nil, replica: replica, notBefore: now, notAfter: now,
      prunedThrough: last.sequence, prunedHash: last.hash, previousHash: head.hash, hash: [])
    checkpoint.hash = checkpoint.computedHash
    return (last.sequence, checkpoint)
  }

  /// Walks `rows` (in sequence order) and names the first that does not verify. Rows cut from the
  /// end leave a shorter chain that verifies: compare the head with one kept elsewhere.
  package static func verify(_ rows: [LedgerEntry]) -> LedgerVerification {
    guard !rows.isEmpty else { return .verified(rows: 0, head: nil) }
    if let broken = self.checkStart(of: rows) { return broken }
    var previous: LedgerEntry?
    for row in rows {
      if let previous {
        guard row.sequence == previous.sequence + 1 else {
          return .broken(LedgerBreak(sequence: previous.sequence + 1, reason: .missing))
        }
        guard row.previousHash == previous.hash else {
          return .broken(LedgerBreak(sequence: row.sequence, reason: .previousHashMismatch))
        }
      }
      guard row.hash == row.computedHash else {
        return .broken(LedgerBreak(sequence: row.sequence, reason: .changed))
      }
      previous = row
    }
    return .verified(rows: rows.count, head: previous)
  }

  /// A chain that does not start at sequence 1 must be vouched for by a later checkpoint naming
  /// the row before its first and that row's hash.
  private static func checkStart(of rows: [LedgerEntry]) -> LedgerVerification? {
    let first = rows[0]
    if first.sequence == 1 {
      return first.previousHash == LedgerEntry.genesisHash
        ? nil : .broken(LedgerBreak(sequence: 1, reason: .previousHashMismatch))
    }
    let vouching = rows.last {
      $0.kind == .checkpoint && $0.prunedThrough == first.sequence - 1
    }
    guard let vouching else {
      return .broken(LedgerBreak(sequence: first.sequence - 1, reason: .missing))
    }
    guard vouching.prunedHash == first.previousHash else {
      return .broken(LedgerBreak(sequence: first.sequence, reason: .previousHashMismatch))
    }
    return nil
  }
}
