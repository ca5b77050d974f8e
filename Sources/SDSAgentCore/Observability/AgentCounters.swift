import Synchronization

/// Counters of what the agent did, for logs, tests and (later) metrics.
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
  }

  private let values = Mutex([Name: Int]())

  public init() {}

  public func increment(_ name: Name, by amount: Int = 1) {
    self.values.withLock { $0[name, default: 0] += amount }
  }

  public subscript(_ name: Name) -> Int {
    self.values.withLock { $0[name, default: 0] }
  }

  public var openStreams: Int {
    self.values.withLock { $0[.streamsOpened, default: 0] - $0[.streamsClosed, default: 0] }
  }
}
