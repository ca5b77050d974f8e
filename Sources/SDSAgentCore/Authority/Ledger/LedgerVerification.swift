/// The outcome of walking the issuance ledger's chain.
package enum LedgerVerification: Sendable, Equatable {
  case verified(rows: Int, head: LedgerEntry?)
  case broken(LedgerBreak)
}

/// The first row of the ledger that does not verify, and why.
package struct LedgerBreak: AgentFailure, Sendable, Equatable {
  package enum Code: String, Sendable {
    /// The row's fields no longer match its hash.
    case changed
    /// The row does not follow the one before it: that one was changed, or rows were reordered.
    case previousHashMismatch = "previous_hash_mismatch"
    /// The row is absent: deleted, or pruned without a checkpoint.
    case missing
  }

  package let sequence: Int64
  package let reason: Code

  package init(sequence: Int64, reason: Code) {
    self.sequence = sequence
    self.reason = reason
  }

  package var code: Code { self.reason }

  package var message: String {
    switch self.reason {
    case .changed: "ledger row \(self.sequence) was changed after it was written (its hash no longer matches)"
    case .previousHashMismatch:
      "ledger row \(self.sequence) does not follow the row before it (that row was changed, or rows were reordered)"
    case .missing: "ledger row \(self.sequence) is missing (deleted, or pruned without a checkpoint)"
    }
  }

  package var remedy: String? {
    "restore the ledger from a backup and find who wrote to the datastore outside sds-agent"
  }

  package var description: String { self.failureText }
}
