/// Group commit as a value: one flush at a time, and what arrives during a flush waits to be
/// written with everything else that arrived meanwhile, in arrival order, by the next one.
///
/// The caller that finds no flush in progress leads: it flushes its own entry and, when that is
/// done, takes the next batch (or learns there is none). An entry leaves the machine in exactly
/// one batch, so none is written twice or lost, and batches follow each other in arrival order.
package struct GroupCommit<Entry> {
  private var isFlushing = false
  private var queued: [Entry] = []

  package init() {}

  package enum Submission: Equatable {
    /// No flush was in progress: the caller flushes its entry alone, now.
    case lead
    /// A flush is in progress: the entry is written by a later one.
    case wait
  }

  package enum Handoff {
    /// Nothing arrived during the flush; the next entry submitted leads.
    case idle
    /// What arrived during the flush, in arrival order: one flush writes it all.
    case lead([Entry])
  }

  /// Entries waiting for the next flush.
  package var waiting: Int { self.queued.count }

  package mutating func submit(_ entry: Entry) -> Submission {
    guard self.isFlushing else {
      self.isFlushing = true
      return .lead
    }
    self.queued.append(entry)
    return .wait
  }

  /// The flush in progress is over (written or failed): who writes next, and what.
  package mutating func flushed() -> Handoff {
    precondition(self.isFlushing, "a flush ended that never started")
    guard !self.queued.isEmpty else {
      self.isFlushing = false
      return .idle
    }
    defer { self.queued = [] }
    return .lead(self.queued)
  }
}

extension GroupCommit.Handoff: Equatable where Entry: Equatable {}
