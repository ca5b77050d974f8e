/// Decides who a caller is from the `CallerEvidence` of its RPC, as configured: the agent's own
/// identity, the workload rule its peer credentials match, or the service account of the token
/// it forwarded.
package struct CallerAttestor: Sendable {
  package let mode: CallerIdentification
  package let rules: [WorkloadRule]
  private let agentIdentity: SPIFFEID
  private let authenticator: (any CallerAuthenticator)?
  private let remoteCA: Bool
  private let executable: @Sendable (Int32) -> String?

  /// - Parameters:
  ///   - authenticator: verifies forwarded tokens; without one, only a remote CA can (fetch mode).
  ///   - remoteCA: certificates come from a remote CA, which must be shown the caller's authority.
  ///   - executable: the executable of a pid, read so that the process cannot change meanwhile.
  package init(
    mode: CallerIdentification,
    rules: [WorkloadRule],
    agentIdentity: SPIFFEID,
    authenticator: (any CallerAuthenticator)?,
    remoteCA: Bool,
    executable: @escaping @Sendable (Int32) -> String?
  ) {
    self.mode = mode
    self.rules = rules
    self.agentIdentity = agentIdentity
    self.authenticator = authenticator
    self.remoteCA = remoteCA
    self.executable = executable
  }

  package func attest(_ evidence: CallerEvidence?) async throws(CallerRefusal) -> Caller {
    if let caller = try self.attestNow(evidence) { return caller }
    let evidence = evidence ?? CallerEvidence(peer: nil, token: nil)
    switch self.mode {
    case .agent, .peer, .token, .peerOrToken:
      // `.token`, or `.peerOrToken` with a token: `attestNow` answered the others.
      return try await self.tokenCaller(evidence.token)
    case .peerAndToken:
      let byPeer = try self.peerCaller(evidence.peer)
      var byToken = try await self.tokenCaller(evidence.token)
      guard byPeer.identity == byToken.identity else {
        throw CallerRefusal(
          .permissionDenied,
          "the forwarded token names \(byToken.identity) but the caller's peer credentials (\(byPeer.evidence)) map to \(byPeer.identity)"
        )
      }
      byToken.evidence = "\(byPeer.evidence) and token"
      return byToken
    }
  }

  /// `attest` when it needs no suspension: every mode but a forwarded token's; nil otherwise.
  package func attestNow(_ evidence: CallerEvidence?) throws(CallerRefusal) -> Caller? {
    switch self.mode {
    case .agent:
      return Caller(identity: self.agentIdentity, credential: .agent, isVerified: true, evidence: "agent identity")
    case .peer:
      return try self.peerCaller(evidence?.peer)
    case .peerOrToken where evidence?.token == nil:
      return try self.peerCaller(evidence?.peer)
    case .token, .peerOrToken, .peerAndToken:
      return nil
    }
  }

  private func peerCaller(_ peer: PeerCredentials?) throws(CallerRefusal) -> Caller {
    guard var peer else {
      throw CallerRefusal(.permissionDenied, "the connection's peer credentials could not be read")
    }
    if self.rules.contains(where: { $0.executable != nil }) {
      peer.executable = self.executable(peer.pid)
    }
    guard let rule = self.rules.first(where: { $0.matches(peer) }) else {
      throw CallerRefusal(
        .permissionDenied,
        "no workload rule matches the caller \(peer)\(self.rules.contains { $0.executable != nil } && peer.executable == nil ? " exe=unknown" : ""); add a `workload` rule for it"
      )
    }
    let credential: CACredential =
      self.remoteCA && rule.identity != self.agentIdentity ? .impersonation : .agent
    return Caller(identity: rule.identity, credential: credential, isVerified: true, evidence: peer.description)
  }

  private func tokenCaller(_ token: String?) async throws(CallerRefusal) -> Caller {
    guard let token else {
      throw CallerRefusal(
        .unauthenticated,
        "no forwarded token: configure Envoy to send one in istio_sds_credentials_header-bin or authorization: Bearer"
      )
    }
    let credential: CACredential = self.remoteCA ? .forwardedToken(token) : .agent
    if let authenticator = self.authenticator {
      switch await authenticator.authenticate(bearerToken: token) {
      case .authenticated(let identity):
        return Caller(identity: identity, credential: credential, isVerified: true, evidence: "verified token")
      case .refused(let reason):
        throw CallerRefusal(.unauthenticated, "the forwarded token was refused: \(BoundedText(reason))")
      }
    }
    guard self.remoteCA else {
      throw CallerRefusal(.unauthenticated, "forwarded tokens cannot be verified: the agent has no jwt-keys")
    }
    // The CA verifies the token when it is first used; until it has, the caller gets nothing.
    let subject: String?
    do {
      subject = try UnverifiedJWT(token).subject
    } catch {
      throw CallerRefusal(
        .unauthenticated, "the forwarded token is not a JWT: \(BoundedText(error.message))", cause: error)
    }
    guard let subject, let account = ServiceAccount(subject: subject) else {
      throw CallerRefusal(
        .unauthenticated,
        "the forwarded token's subject \(BoundedText(subject ?? "(none)")) is not "
          + "system:serviceaccount:<namespace>:<name>"
      )
    }
    do {
      let identity = try account.spiffeID(trustDomain: self.agentIdentity.trustDomain)
      return Caller(
        identity: identity, credential: credential, isVerified: false, evidence: "token for the CA to verify")
    } catch {
      throw CallerRefusal(
        .unauthenticated, "the forwarded token's service account is not a SPIFFE ID: \(error.reason)", cause: error)
    }
  }
}
