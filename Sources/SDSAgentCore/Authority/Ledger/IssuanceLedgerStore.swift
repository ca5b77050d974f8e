/// Where the issuance ledger's rows are kept (PostgreSQL, for `ca serve --datastore`).
package protocol IssuanceLedgerStore: Sendable {
  /// Seals `issuances` after the ledger's head, in order, all or none.
  func append(_ issuances: [LedgerChain.Issuance]) async throws
}

/// Records a certificate signed before the answer carrying it leaves.
package protocol LedgerRecorder: Sendable {
  func record(_ issuance: LedgerChain.Issuance) async throws(LedgerUnavailable)
}

/// The ledger can take no more records: its store is unreachable and the rows held for it are
/// at their limit. The certificate must not be handed out.
package struct LedgerUnavailable: AgentFailure, Sendable, Equatable {
  package enum Code: String, Sendable {
    case backlogFull = "backlog_full"
  }

  package let held: Int

  package init(held: Int) {
    self.held = held
  }

  package var code: Code { .backlogFull }
  package var message: String {
    "the issuance ledger cannot be written and already holds \(self.held) rows for it"
  }
  package var remedy: String? { "bring the datastore back; signing resumes as soon as the held rows are written" }
  package var description: String { self.failureText }
}
