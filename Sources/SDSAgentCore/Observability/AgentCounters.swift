import Synchronization

/// Counters of what the agent did, for logs, tests and metrics.
public final class AgentCounters: Sendable {
  public enum Name: String, Sendable, CaseIterable {
    case streamsOpened = "streams_opened"
    case streamsClosed = "streams_closed"
    case fetches
    case responsesSent = "responses_sent"
    case acks
    case nacks
    case staleRequests = "stale_requests"
    case rejectedRequests = "rejected_requests"
    case certificatesIssued = "certificates_issued"
    case issuanceFailures = "issuance_failures"
    case svidsWithdrawn = "svids_withdrawn"
    case callersRefused = "callers_refused"
  }

  private struct State {
    var values: [Name: Int] = [:]
    var watchers: [Int: AsyncStream<Void>.Continuation] = [:]
    var nextWatcher = 0
  }

  private let state = Mutex(State())
  private let recorder: (any AgentMetricsRecorder)?

  public init(recorder: (any AgentMetricsRecorder)? = nil) {
    self.recorder = recorder
  }

  /// Counts `name`; `labels` (such as a NACK's reason) go to the metrics recorder only.
  public func increment(_ name: Name, by amount: Int = 1, labels: [(String, String)] = []) {
    self.recorder?.increment(name, by: amount, labels: labels)
    let watchers = self.state.withLock { state in
      state.values[name, default: 0] += amount
      return state.watchers.isEmpty ? [] : Array(state.watchers.values)
    }
    watchers.forEach { $0.yield() }
  }

  public subscript(_ name: Name) -> Int {
    self.state.withLock { $0.values[name, default: 0] }
  }

  public var openStreams: Int {
    self.state.withLock { $0.values[.streamsOpened, default: 0] - $0.values[.streamsClosed, default: 0] }
  }

  /// Records how long obtaining a certificate took.
  public func recordIssuance(duration: Duration, succeeded: Bool) {
    self.recorder?.recordIssuance(duration: duration, succeeded: succeeded)
  }

  /// Returns once `predicate` holds, re-checking after every increment.
  public func waitUntil(_ predicate: (AgentCounters) -> Bool) async {
    let (changes, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    let id = self.state.withLock { state in
      let id = state.nextWatcher
      state.nextWatcher += 1
      state.watchers[id] = continuation
      return id
    }
    defer { _ = self.state.withLock { $0.watchers.removeValue(forKey: id) } }
    if predicate(self) { return }
    for await _ in changes where predicate(self) {
      return
    }
  }
}

/// Where counters go besides memory: the Prometheus registry of the admin endpoint.
public protocol AgentMetricsRecorder: Sendable {
  func increment(_ name: AgentCounters.Name, by amount: Int, labels: [(String, String)])
  func recordIssuance(duration: Duration, succeeded: Bool)
}
