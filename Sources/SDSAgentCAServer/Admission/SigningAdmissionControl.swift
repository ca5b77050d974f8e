import SDSAgentCore
import Synchronization

/// `ca serve`'s admission control: the `AdmissionState` behind a lock, on a clock, with counts
/// of what it admitted and refused for `/metrics`.
package final class SigningAdmissionControl<C: Clock>: SigningAdmission, Sendable where C.Duration == Duration {
  private struct Guarded: Sendable {
    var state: AdmissionState<C.Instant>
    var admitted = 0
    var refused: [AdmissionRefusal.Reason: Int] = [:]
    /// When each call in flight started, oldest first.
    var started: [C.Instant] = []
  }

  private let guarded: Mutex<Guarded>
  private let clock: C

  package init(limits: AdmissionState<C.Instant>.Limits, clock: C) {
    self.guarded = Mutex(Guarded(state: AdmissionState(limits: limits)))
    self.clock = clock
  }

  package var limits: AdmissionState<C.Instant>.Limits { self.guarded.withLock { $0.state.limits } }

  package func start() -> AdmissionDecision {
    let now = self.clock.now
    return self.guarded.withLock { guarded in
      let decision = guarded.state.start(now: now)
      switch decision {
      case .admitted:
        guarded.admitted += 1
        guarded.started.append(now)
      case .refused(let refusal):
        guarded.refused[refusal.reason, default: 0] += 1
      }
      return decision
    }
  }

  package func charge(caller: SPIFFEID) -> AdmissionDecision {
    let now = self.clock.now
    return self.guarded.withLock { guarded in
      let decision = guarded.state.charge(caller: caller, now: now)
      if case .refused(let refusal) = decision { guarded.refused[refusal.reason, default: 0] += 1 }
      return decision
    }
  }

  package func finished() {
    let now = self.clock.now
    self.guarded.withLock { guarded in
      // Calls take about as long as one another: the oldest start stands for the one that ended.
      let started = guarded.started.isEmpty ? now : guarded.started.removeFirst()
      guarded.state.finished(took: started.duration(to: now))
    }
  }

  /// What it counted, for `/metrics`.
  package var figures: Figures {
    self.guarded.withLock { guarded in
      Figures(
        admitted: guarded.admitted, refused: guarded.refused, inFlight: guarded.state.inFlight,
        callers: guarded.state.callers)
    }
  }

  package struct Figures: Sendable, Equatable {
    package let admitted: Int
    package let refused: [AdmissionRefusal.Reason: Int]
    package let inFlight: Int
    package let callers: Int
  }
}
