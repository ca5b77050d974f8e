import Foundation
import SDSAgentCore
import Synchronization

/// Follows every stream of a `StreamLoad` through its first response, its rotation push and any
/// failure, without blocking any of them.
final class StreamTracker: Sendable {
  private enum Phase: UInt8 {
    case opening, answered, pushed, failed
  }

  private struct State {
    var phases: [Phase]
    var requestedAt: [ContinuousClock.Instant?]
    /// Each answered stream's wait from its request to its first response.
    var firstResponseWaits: [Duration] = []
    var firstResponses = 0
    var failedBeforeFirstResponse = 0
    var errors = 0
    var firstError: String?
    var closing = false
    var fanOutStart: ContinuousClock.Instant?
    var pushLatencies: [Duration] = []
    var defaultStreamsLost = 0
    var allPushed = Milestone()
  }

  let streams: Int
  let defaultStreams: Int
  /// Reached once every stream has its first response or has failed.
  let allFirstResponses = Milestone()
  /// Reached once every `default` stream has had the push of the latest fan-out or has failed.
  var allPushed: Milestone { self.state.withLock { $0.allPushed } }
  /// Reached when the measurement is over: the streams close.
  let finish = Milestone()
  private let state: Mutex<State>

  init(streams: Int, defaultStreams: Int) {
    self.streams = streams
    self.defaultStreams = defaultStreams
    self.state = Mutex(
      State(phases: Array(repeating: .opening, count: streams), requestedAt: Array(repeating: nil, count: streams)))
  }

  func requested(stream: Int, at instant: ContinuousClock.Instant) {
    self.state.withLock { $0.requestedAt[stream] = instant }
  }

  func firstResponse(stream: Int) {
    let now = ContinuousClock.now
    let done = self.state.withLock { state -> Bool in
      guard state.phases[stream] == .opening else { return false }
      state.phases[stream] = .answered
      state.firstResponses += 1
      if let requested = state.requestedAt[stream] { state.firstResponseWaits.append(now - requested) }
      return state.firstResponses + state.failedBeforeFirstResponse == self.streams
    }
    if done { self.allFirstResponses.reach() }
  }

  /// Starts timing a fan-out; a later one times every `default` stream's next push again.
  func startFanOut(at instant: ContinuousClock.Instant) {
    self.state.withLock { state in
      if state.fanOutStart != nil {
        for stream in state.phases.indices where state.phases[stream] == .pushed { state.phases[stream] = .answered }
        state.pushLatencies = []
        state.allPushed = Milestone()
      }
      state.fanOutStart = instant
    }
  }

  /// A `default` stream's push; only the first one after the fan-out started is timed.
  func pushed(stream: Int, at instant: ContinuousClock.Instant) {
    let done = self.state.withLock { state -> Milestone? in
      guard let start = state.fanOutStart, state.phases[stream] == .answered else { return nil }
      state.phases[stream] = .pushed
      state.pushLatencies.append(instant - start)
      return state.pushLatencies.count + state.defaultStreamsLost == self.defaultStreams ? state.allPushed : nil
    }
    done?.reach()
  }

  /// A stream ended with `error` while the measurement still needed it; errors once the streams
  /// are being closed are the closing itself and are not counted.
  func failed(stream: Int, subscribedToDefault: Bool, _ error: any Error) {
    let (answered, pushed) = self.state.withLock { state -> (Bool, Milestone?) in
      let phase = state.phases[stream]
      guard !state.closing, phase != .failed else { return (false, nil) }
      state.phases[stream] = .failed
      state.errors += 1
      state.firstError = state.firstError ?? "\(error)"
      if phase == .opening { state.failedBeforeFirstResponse += 1 }
      if subscribedToDefault && phase != .pushed { state.defaultStreamsLost += 1 }
      return (
        phase == .opening && state.firstResponses + state.failedBeforeFirstResponse == self.streams,
        subscribedToDefault && phase != .pushed
          && state.pushLatencies.count + state.defaultStreamsLost == self.defaultStreams ? state.allPushed : nil
      )
    }
    if answered { self.allFirstResponses.reach() }
    pushed?.reach()
  }

  /// Ends the measurement: every stream's request side closes.
  func close() {
    self.state.withLock { $0.closing = true }
    self.finish.reach()
  }

  var firstResponses: Int { self.state.withLock { $0.firstResponses } }
  var errors: Int { self.state.withLock { $0.errors } }
  var firstError: String? { self.state.withLock { $0.firstError } }
  var pushLatencies: [Duration] { self.state.withLock { $0.pushLatencies } }
  var firstResponseWaits: [Duration] { self.state.withLock { $0.firstResponseWaits } }

  /// Waits for `milestone` at most `limit`; returns whether it came first. At the limit it
  /// reaches the milestone itself, which releases the waiter (`Milestone.wait` ignores
  /// cancellation); every milestone here is waited for once, so that ends its use.
  static func wait(for milestone: Milestone, atMost limit: Duration) async -> Bool {
    await withTaskGroup(of: Bool.self) { group in
      group.addTask {
        await milestone.wait()
        return true
      }
      group.addTask { (try? await Task.sleep(for: limit)) == nil }
      let first = await group.next() ?? false
      if !first { milestone.reach() }
      group.cancelAll()
      return first
    }
  }
}
