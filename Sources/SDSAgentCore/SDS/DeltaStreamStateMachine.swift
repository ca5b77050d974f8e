/// The state of one incremental `DeltaSecrets` stream, following Envoy's delta xDS protocol
/// (`api/xds_protocol.rst`, "Incremental xDS"): the names subscribed, the version the client
/// holds of each, ACK/NACK by nonce. A response carries only what changed for the client.
///
/// Plain value; every transition returns what the stream must do. No I/O, no clock.
package struct DeltaStreamStateMachine: Sendable {
  package enum Feedback: Sendable, Equatable {
    /// The first request of the stream.
    case initial
    /// The client accepted the response with this nonce.
    case ack(nonce: String)
    /// The client rejected the response with this nonce.
    case nack(nonce: String, message: String)
    /// The request names a nonce this stream never sent, or one already answered: ignored.
    case stale(nonce: String)
  }

  package struct Outcome: Sendable, Equatable {
    package var feedback: Feedback?
    package var response: DeltaResponsePlan?
    /// On an ACK of a response that carried the caller's trust bundle: that bundle. An ACK of
    /// a response without one acknowledges no bundle, whatever was sent after it.
    package var acknowledgedTrustBundle: TrustBundle?
  }

  /// The most names one stream may hold subscribed.
  package static let maximumSubscriptions = 1024
  static let maximumPendingNonces = 16
  /// What the client holds of a name it was told is removed.
  private static let removedVersion = "removed"

  package private(set) var naming: SecretNaming
  /// Subscribed resources in the order of first subscription.
  package private(set) var subscribed: [RequestedSecret] = []
  /// The version of each resource the client holds, as it told or as it was sent.
  private var clientVersions: [String: String] = [:]
  /// Nonces sent and not yet acknowledged or rejected, oldest first, each with the trust bundle
  /// its response carried; a client that never answers keeps only the newest
  /// `maximumPendingNonces`.
  private var pendingNonces: [(nonce: String, trustBundle: TrustBundle?)] = []
  private var started = false
  private var nextNonce: UInt64 = 1

  package init(naming: SecretNaming) {
    self.naming = naming
  }

  package mutating func receive(
    _ request: DeltaRequest, served: ServedSecrets
  ) throws(SDSRequestError) -> Outcome {
    guard request.typeURL.isEmpty || request.typeURL == SecretResource.typeURL else {
      throw .unsupportedType(request.typeURL)
    }
    let feedback: Feedback?
    var acknowledgedTrustBundle: TrustBundle?
    if !self.started {
      self.started = true
      if request.disablesSPIFFEValidator { self.naming.spiffeValidator = false }
      // The client fills this map: bounded as subscriptions are, in count and name length.
      guard request.initialVersions.count <= Self.maximumSubscriptions else {
        throw .tooManySubscriptions(request.initialVersions.count, limit: Self.maximumSubscriptions)
      }
      if let long = request.initialVersions.keys.first(where: { $0.utf8.count > SDSRequest.maximumNameLength }) {
        throw .nameTooLong(long)
      }
      for (name, version) in request.initialVersions {
        self.clientVersions[name] = String(version.prefix(SDSRequest.maximumNameLength))
      }
      feedback = .initial
    } else if request.responseNonce.isEmpty {
      feedback = nil
    } else if let index = self.pendingNonces.firstIndex(where: { $0.nonce == request.responseNonce }) {
      // The client answers responses in order: older nonces are answered too.
      let answered = self.pendingNonces[index]
      self.pendingNonces.removeSubrange(...index)
      if let error = request.errorDetail {
        feedback = .nack(nonce: request.responseNonce, message: error.message)
      } else {
        feedback = .ack(nonce: request.responseNonce)
        acknowledgedTrustBundle = answered.trustBundle
      }
    } else {
      feedback = .stale(nonce: request.responseNonce)
    }

    let added =
      request.subscribe.isEmpty
      ? [] : try self.naming.resolve(request.subscribe, trustDomains: served.trust?.domains, refused: request.refused)
    for name in request.unsubscribe.prefix(Self.maximumSubscriptions) {
      self.subscribed.removeAll { $0.name == name }
      self.clientVersions[name] = nil
    }
    for secret in added where !self.subscribed.contains(secret) {
      self.subscribed.append(secret)
    }
    guard self.subscribed.count <= Self.maximumSubscriptions else {
      throw .tooManySubscriptions(self.subscribed.count, limit: Self.maximumSubscriptions)
    }
    return Outcome(
      feedback: feedback, response: self.plan(served: served), acknowledgedTrustBundle: acknowledgedTrustBundle)
  }

  /// On-demand names refused over the cap or the rate were admitted since: they are served from
  /// now on (and sent, since the client holds them as removed).
  package mutating func admitted(_ names: [String: DNSName]) {
    guard !names.isEmpty else { return }
    self.subscribed = self.subscribed.map { secret in
      guard case .refused = secret.resource, let name = names[secret.name] else { return secret }
      return RequestedSecret(name: secret.name, resource: .onDemand(name))
    }
  }

  /// The served secrets changed; returns the response to push, if the client lacks a version.
  package mutating func secretsChanged(_ served: ServedSecrets) -> DeltaResponsePlan? {
    guard self.started else { return nil }
    return self.plan(served: served)
  }

  private mutating func plan(served: ServedSecrets) -> DeltaResponsePlan? {
    var items: [DeltaResponsePlan.Item] = []
    var removed: [String] = []
    for secret in self.subscribed where served.isAvailable(secret.resource) {
      if case .refused = secret.resource {
        guard self.clientVersions[secret.name] != Self.removedVersion else { continue }
        self.clientVersions[secret.name] = Self.removedVersion
        removed.append(secret.name)
        continue
      }
      let version = String(served.revision(of: secret.resource))
      guard self.clientVersions[secret.name] != version else { continue }
      self.clientVersions[secret.name] = version
      items.append(DeltaResponsePlan.Item(secret: secret, version: version))
    }
    guard !items.isEmpty || !removed.isEmpty else { return nil }
    let nonce = String(self.nextNonce)
    self.nextNonce += 1
    let ownDomain = TrustDomainName(of: self.naming.identity)
    let bundle = items.contains { $0.secret.resource.carriesBundle(of: ownDomain) } ? served.trustBundle : nil
    self.pendingNonces.append((nonce, bundle))
    if self.pendingNonces.count > Self.maximumPendingNonces { self.pendingNonces.removeFirst() }
    return DeltaResponsePlan(resources: items, removed: removed, nonce: nonce, trustBundle: bundle)
  }
}
