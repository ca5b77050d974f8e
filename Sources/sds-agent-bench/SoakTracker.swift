import Foundation
import SDSAgentCore
import Synchronization

/// Follows a soak's streams through rounds of rotation: which `default` streams have had the
/// current round's push, and how long after the round started.
final class SoakTracker: StreamObserver {
  private struct State {
    var answered: [Bool]
    var failed: [Bool]
    /// The last round each stream had a push in.
    var pushedIn: [Int]
    var firstResponses = 0
    var failedBeforeFirstResponse = 0
    var errors = 0
    var firstError: String?
    var closing = false
    var round = 0
    var roundStart = ContinuousClock.now
    var latencies: [Duration] = []
    /// Streams that had this round's push and have failed since.
    var lostAfterPush = 0
    var roundDone = Milestone()
    var defaultStreamsLeft: Int

    var roundComplete: Bool { self.latencies.count - self.lostAfterPush == self.defaultStreamsLeft }
  }

  let streams: Int
  let allFirstResponses = Milestone()
  let finish = Milestone()
  private let isDefault: @Sendable (Int) -> Bool
  private let state: Mutex<State>

  /// `isDefault(stream)` tells which streams are subscribed to `default`.
  init(streams: Int, defaultStreams: Int, isDefault: @escaping @Sendable (Int) -> Bool) {
    self.streams = streams
    self.isDefault = isDefault
    self.state = Mutex(
      State(
        answered: Array(repeating: false, count: streams), failed: Array(repeating: false, count: streams),
        pushedIn: Array(repeating: 0, count: streams), defaultStreamsLeft: defaultStreams))
  }

  func firstResponse(stream: Int) {
    let done = self.state.withLock { state -> Bool in
      guard !state.answered[stream], !state.failed[stream] else { return false }
      state.answered[stream] = true
      state.firstResponses += 1
      return state.firstResponses + state.failedBeforeFirstResponse == self.streams
    }
    if done { self.allFirstResponses.reach() }
  }

  /// Starts the next round at `instant`; its milestone is reached once every `default` stream
  /// still open has had a push in it.
  func startRound(at instant: ContinuousClock.Instant) -> Milestone {
    self.state.withLock { state in
      state.round += 1
      state.roundStart = instant
      state.latencies.removeAll(keepingCapacity: true)
      state.lostAfterPush = 0
      state.roundDone = Milestone()
      return state.roundDone
    }
  }

  func pushed(stream: Int, at instant: ContinuousClock.Instant) {
    let done = self.state.withLock { state -> Milestone? in
      guard state.round > 0, state.pushedIn[stream] < state.round, !state.failed[stream] else { return nil }
      state.pushedIn[stream] = state.round
      state.latencies.append(instant - state.roundStart)
      return state.roundComplete ? state.roundDone : nil
    }
    done?.reach()
  }

  func failed(stream: Int, subscribedToDefault: Bool, _ error: any Error) {
    let (answered, round) = self.state.withLock { state -> (Bool, Milestone?) in
      guard !state.closing, !state.failed[stream] else { return (false, nil) }
      state.failed[stream] = true
      state.errors += 1
      state.firstError = state.firstError ?? "\(error)"
      var answered = false
      if !state.answered[stream] {
        state.failedBeforeFirstResponse += 1
        answered = state.firstResponses + state.failedBeforeFirstResponse == self.streams
      }
      guard self.isDefault(stream) else { return (answered, nil) }
      state.defaultStreamsLeft -= 1
      if state.round > 0 && state.pushedIn[stream] == state.round { state.lostAfterPush += 1 }
      return (answered, state.roundComplete ? state.roundDone : nil)
    }
    if answered { self.allFirstResponses.reach() }
    round?.reach()
  }

  func close() {
    self.state.withLock { $0.closing = true }
    self.finish.reach()
  }

  /// The current round's push latencies, and the `default` streams still open.
  var round: (latencies: [Duration], defaultStreams: Int) {
    self.state.withLock { ($0.latencies, $0.defaultStreamsLeft) }
  }

  var errors: Int { self.state.withLock { $0.errors } }
  var firstError: String? { self.state.withLock { $0.firstError } }
}
