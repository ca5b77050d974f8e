import Synchronization

/// The one place the agent's counts live, each by name and a small, closed set of labels.
/// `/metrics` renders them, `/debug` and tests read them; no other copy of a count exists.
package final class AgentCounters: Sendable {
  package enum Name: String, Sendable, CaseIterable {
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
    /// A trust bundle file that could not be used; labels `trust_domain` (configured) and `reason`.
    case trustBundleErrors = "trust_bundle_errors"
    /// On-demand certificates minted.
    case onDemandIssued = "on_demand_certificates_issued"
    /// On-demand names refused; label `reason` (`OnDemandRefusal`).
    case onDemandRefused = "on_demand_refused"
    /// Files of a configured secret that could not be served; labels `secret` (configured) and `reason`.
    case fileSecretErrors = "file_secret_errors"
    /// The operator's changed CA files that could not be used; label `reason` (`OperatorCAFilesWatcher.Reason`).
    case operatorCAErrors = "operator_ca_errors"
    /// SPIFFE Workload API calls by how they went; labels `method` and `outcome` (`ok` once the
    /// first answer is sent, else the refusal's code).
    case workloadAPICalls = "workload_api_calls"
    /// Followed CRLs not taken (fetch mode); labels `source` and `reason` (`CRLFetchFailure`).
    case crlFetchErrors = "crl_fetch_errors"
    /// New session ticket seeds not taken (the last good keys stay); labels `keys` (configured)
    /// and `reason` (`SessionTicketSeedError.reason`).
    case sessionTicketSeedErrors = "session_ticket_seed_errors"
  }

  /// One counted series: a name and its labels, in a stable order.
  package struct Series: Hashable, Sendable {
    package let name: Name
    package let labels: [Label]

    package struct Label: Hashable, Sendable {
      package let name: String
      package let value: String
    }

    package init(name: Name, labels: [Label] = []) {
      self.name = name
      self.labels = labels
    }
  }

  private struct State {
    /// The series without labels, by name: most counts are these (every push, every stream), and
    /// a name is looked up faster than a whole series.
    var unlabeled: [Name: Int] = [:]
    var labeled: [Series: Int] = [:]
    var watchers: [Int: AsyncStream<Void>.Continuation] = [:]
    var nextWatcher = 0
  }

  private let state = Mutex(State())
  private let recorder: (any IssuanceRecorder)?

  /// - Parameter recorder: where issuance durations go (a histogram), if anywhere.
  package init(recorder: (any IssuanceRecorder)? = nil) {
    self.recorder = recorder
  }

  /// Counts `name` in the series of `labels`. Label values must come from a closed set (codes,
  /// reasons, resource types), never from a client's text.
  package func increment(_ name: Name, by amount: Int = 1, labels: [(String, String)] = []) {
    let series = labels.isEmpty ? nil : Series(name: name, labels: labels.map { Series.Label(name: $0.0, value: $0.1) })
    let watchers = self.state.withLock { state in
      if let series {
        state.labeled[series, default: 0] += amount
      } else {
        state.unlabeled[name, default: 0] += amount
      }
      return state.watchers.isEmpty ? [] : Array(state.watchers.values)
    }
    watchers.forEach { $0.yield() }
  }

  /// The total of `name` over all its labels.
  package subscript(_ name: Name) -> Int {
    self.state.withLock { state in
      state.labeled.reduce(state.unlabeled[name] ?? 0) { $1.key.name == name ? $0 + $1.value : $0 }
    }
  }

  /// Every series counted so far, with its value.
  package var series: [(series: Series, value: Int)] {
    self.state.withLock { state in
      state.unlabeled.map { (Series(name: $0.key), $0.value) } + state.labeled.map { ($0.key, $0.value) }
    }
  }

  package var openStreams: Int {
    self[.streamsOpened] - self[.streamsClosed]
  }

  /// Records how long obtaining a certificate took.
  package func recordIssuance(duration: Duration, succeeded: Bool) {
    self.recorder?.recordIssuance(duration: duration, succeeded: succeeded)
  }

  /// Returns once `predicate` holds, re-checking after every increment.
  package func waitUntil(_ predicate: (AgentCounters) -> Bool) async {
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

/// Where issuance durations go: the histogram of the admin endpoint.
package protocol IssuanceRecorder: Sendable {
  func recordIssuance(duration: Duration, succeeded: Bool)
}
