/// One Workload API stream's state, as a value: whether its one request came, and the revisions
/// of what it last sent. Each response is the whole state, so a change is pushed once whatever
/// else changed meanwhile, and a change of something the stream does not carry (a file secret,
/// an on-demand certificate) pushes nothing.
package struct WorkloadAPIStreamState: Sendable {
  /// What the stream carries.
  package enum Content: String, Sendable {
    /// `FetchX509SVID`: the caller's SVID and key, its bundle, the federated bundles, the CRLs.
    case x509SVID = "FetchX509SVID"
    /// `FetchX509Bundles`: every trust domain's roots and the CRLs.
    case x509Bundles = "FetchX509Bundles"
  }

  /// What the stream does after an event.
  package enum Action: Equatable, Sendable {
    /// Sends the served state as it is now.
    case send
    case wait
  }

  package let content: Content
  package private(set) var requested = false
  private var sentRevisions: [UInt64]?

  package init(_ content: Content) {
    self.content = content
  }

  /// The client's request: the stream answers with the state at once, or ends UNAVAILABLE while
  /// there is none.
  package mutating func requestReceived(_ served: ServedSecrets) throws(WorkloadAPIFailure) -> Action {
    guard !self.requested else {
      throw WorkloadAPIFailure(.invalidRequest, "\(self.content.rawValue) takes exactly one request message")
    }
    self.requested = true
    return try self.push(served)
  }

  /// The served secrets changed: sent if what the stream carries did. An SVID that is gone (it
  /// expired unrenewed) ends the stream UNAVAILABLE; the client reconnects and waits.
  package mutating func secretsChanged(_ served: ServedSecrets) throws(WorkloadAPIFailure) -> Action {
    guard self.requested else { return .wait }
    return try self.push(served)
  }

  /// The client half-closed: a server stream goes on, once its request came.
  package func requestsEnded() throws(WorkloadAPIFailure) -> Action {
    guard self.requested else {
      throw WorkloadAPIFailure(.invalidRequest, "\(self.content.rawValue) takes exactly one request message")
    }
    return .wait
  }

  private mutating func push(_ served: ServedSecrets) throws(WorkloadAPIFailure) -> Action {
    guard served.trust != nil, self.content == .x509Bundles || served.svid != nil else {
      throw WorkloadAPIFailure(.notReady, "no valid X.509-SVID is available for the caller yet")
    }
    let revisions = self.content.revisions(of: served)
    guard revisions != self.sentRevisions else { return .wait }
    self.sentRevisions = revisions
    return .send
  }
}

extension WorkloadAPIStreamState.Content {
  /// The revisions of what a stream of this content carries: its message changes exactly when
  /// one of them does.
  package func revisions(of served: ServedSecrets) -> [UInt64] {
    switch self {
    case .x509SVID: [served.svidRevision, served.trustBundleRevision, served.federationRevision]
    case .x509Bundles: [served.trustBundleRevision, served.federationRevision]
    }
  }
}
