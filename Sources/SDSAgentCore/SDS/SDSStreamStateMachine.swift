/// The state of one SotW `StreamSecrets` stream, following Envoy's xDS protocol
/// (`api/xds_protocol.rst`): the resources asked for, the last response sent, ACK/NACK.
///
/// Plain value; every transition returns what the stream must do. No I/O, no clock.
package struct SDSStreamStateMachine: Sendable {
  /// What a request turned out to be.
  package enum Feedback: Sendable, Equatable {
    /// The first request of the stream (whatever version or nonce it carries).
    case initial
    /// Envoy accepted the response with this version.
    case ack(versionInfo: String)
    /// Envoy rejected the response with this nonce; it keeps `versionInfo`.
    case nack(versionInfo: String, nonce: String, message: String)
    /// The request answers an older response than the last one sent; it is ignored.
    case stale(nonce: String)
  }

  package struct Outcome: Sendable, Equatable {
    package var feedback: Feedback?
    package var response: SDSResponsePlan?
  }

  package private(set) var naming: SecretNaming
  private var resources: [RequestedSecret] = []
  private var subscribed = false
  private var lastNonce: String?
  private var lastSentRevision: UInt64?
  private var nextNonce: UInt64 = 1

  package init(naming: SecretNaming) {
    self.naming = naming
  }

  /// The resources this stream currently asks for.
  package var subscribedResources: [RequestedSecret] { self.resources }

  package mutating func receive(
    _ request: SDSRequest,
    served: ServedSecrets
  ) throws(SDSRequestError) -> Outcome {
    guard request.typeURL.isEmpty || request.typeURL == SecretResource.typeURL else {
      throw .unsupportedType(request.typeURL)
    }
    if !self.subscribed, request.disablesSPIFFEValidator {
      self.naming.spiffeValidator = false
    }
    let requested = try self.naming.resolve(
      request.resourceNames, trustDomains: served.trust?.domains, refused: request.refused)

    let feedback: Feedback
    if let lastNonce = self.lastNonce {
      guard request.responseNonce == lastNonce else {
        return Outcome(feedback: .stale(nonce: request.responseNonce), response: nil)
      }
      if let error = request.errorDetail {
        feedback = .nack(versionInfo: request.versionInfo, nonce: lastNonce, message: error.message)
      } else {
        feedback = .ack(versionInfo: request.versionInfo)
      }
    } else {
      // A new stream always gets the current secrets, even if it carries a version and nonce
      // from an earlier stream (spiffe/spire#813).
      feedback = .initial
    }

    let namesChanged = !self.subscribed || requested != self.resources
    self.resources = requested
    self.subscribed = true
    guard namesChanged else {
      // An ACK or NACK of what is current: nothing to send. A NACK is never answered with the
      // same payload; the next change of the secrets is sent as usual.
      return Outcome(feedback: feedback, response: self.planIfChanged(served: served))
    }
    return Outcome(feedback: feedback, response: self.plan(served: served))
  }

  /// Whether a change of these kinds can move what this stream is sent: a subscribed stream
  /// asking for a secret of one of them.
  package func isAffected(by changes: SecretChanges) -> Bool {
    guard self.subscribed else { return false }
    for requested in self.resources where !requested.resource.changes.isDisjoint(with: changes) {
      return true
    }
    return false
  }

  /// The served secrets changed; returns the response to push, if this stream is affected.
  package mutating func secretsChanged(_ served: ServedSecrets) -> SDSResponsePlan? {
    guard self.subscribed else { return nil }
    return self.planIfChanged(served: served)
  }

  private mutating func planIfChanged(served: ServedSecrets) -> SDSResponsePlan? {
    if let lastSentRevision = self.lastSentRevision, self.revision(in: served) <= lastSentRevision {
      return nil
    }
    return self.plan(served: served)
  }

  private mutating func plan(served: ServedSecrets) -> SDSResponsePlan? {
    // Everything asked for must be available: a response carries every requested name.
    guard self.resources.allSatisfy({ served.isAvailable($0.resource) }) else { return nil }
    let revision = self.revision(in: served)
    let nonce = String(self.nextNonce)
    self.nextNonce += 1
    self.lastNonce = nonce
    self.lastSentRevision = revision
    return SDSResponsePlan(resources: self.resources, revision: revision, nonce: nonce)
  }

  private func revision(in served: ServedSecrets) -> UInt64 {
    // A loop, not map and max: every stream computes this on every change of its secrets.
    var revision: UInt64 = 0
    for resource in self.resources { revision = max(revision, served.revision(of: resource.resource)) }
    return revision
  }
}
