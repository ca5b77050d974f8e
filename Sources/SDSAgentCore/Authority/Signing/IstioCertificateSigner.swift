import EnvoySDSProtos
import Foundation
import GRPCCore
import Logging
import SwiftProtobuf
import X509

/// `istio.v1.auth.IstioCertificateService` backed by an `EmbeddedCA`: authenticates the caller
/// by bearer token, authorizes the CSR with `CSRPolicy`, caps the lifetime and answers in both
/// styles (`cert_chain` with the root bundle last, and `root_cert`), so old and new clients work.
/// During a root rotation the bundle holds every root the CA trusts.
package struct IstioCertificateSigner: Istio_V1_Auth_IstioCertificateService.ServiceProtocol {
  private let ca: EmbeddedCA
  private let authenticator: any CallerAuthenticator
  private let maximumTTL: Duration
  /// Node agents allowed to ask for their workloads' certificates (Istio's
  /// `CA_TRUSTED_NODE_ACCOUNTS`), naming them in the `ImpersonatedIdentity` metadata.
  private let trustedNodeIdentities: Set<SPIFFEID>
  private let logger: Logger
  private let now: @Sendable () -> Date
  /// Caps calls in flight and each caller's rate (`ca serve --max-inflight`, `--caller-rate`).
  private let admission: (any SigningAdmission)?
  /// Where every certificate signed is written before its answer leaves (`ca serve --datastore`).
  let ledger: (any LedgerRecorder)?
  /// This replica's name in the ledger.
  let replica: String

  package init(
    ca: EmbeddedCA,
    authenticator: any CallerAuthenticator,
    maximumTTL: Duration,
    trustedNodeIdentities: Set<SPIFFEID> = [],
    logger: Logger,
    now: @escaping @Sendable () -> Date = { Date() },
    admission: (any SigningAdmission)? = nil,
    ledger: (any LedgerRecorder)? = nil,
    replica: String = ""
  ) {
    self.ledger = ledger
    self.replica = replica
    self.ca = ca
    self.authenticator = authenticator
    self.maximumTTL = maximumTTL
    self.trustedNodeIdentities = trustedNodeIdentities
    self.logger = logger
    self.now = now
    self.admission = admission
  }

  package func createCertificate(
    request: ServerRequest<Istio_V1_Auth_IstioCertificateRequest>,
    context: ServerContext
  ) async throws -> ServerResponse<Istio_V1_Auth_IstioCertificateResponse> {
    guard let admission = self.admission else { return try await self.answer(request.metadata, request.message) }
    // Counted from the start: a call waiting for a thread to verify its token is in flight too,
    // and a refusal costs no token verification.
    if case .refused(let refusal) = admission.start() { throw Self.overCapacity(refusal) }
    defer { admission.finished() }
    return try await self.answer(request.metadata, request.message, admission: admission)
  }

  private func answer(
    _ metadata: Metadata, _ message: Istio_V1_Auth_IstioCertificateRequest, admission: (any SigningAdmission)? = nil
  ) async throws -> ServerResponse<Istio_V1_Auth_IstioCertificateResponse> {
    guard let token = metadata.bearerToken else {
      throw self.refuse(.unauthenticated, "no bearer token: send `authorization: Bearer <JWT>`")
    }
    var caller: SPIFFEID
    switch await self.authenticator.authenticate(bearerToken: token) {
    case .authenticated(let identity): caller = identity
    case .refused(let reason): throw self.refuse(.unauthenticated, reason)
    }
    if let admission, case .refused(let refusal) = admission.charge(caller: caller) {
      throw Self.overCapacity(refusal)
    }
    let authenticated = caller
    if let impersonated = message.metadata.fields[Self.impersonatedIdentityKey] {
      caller = try self.impersonate(impersonated, by: caller)
    }
    let (response, leaf) = try await self.sign(message, for: caller)
    try await self.record(leaf, identity: caller, caller: authenticated)
    return response
  }

  /// Verifies the CSR and signs it.
  private func sign(
    _ message: Istio_V1_Auth_IstioCertificateRequest, for caller: SPIFFEID
  ) async throws -> (ServerResponse<Istio_V1_Auth_IstioCertificateResponse>, leaf: Certificate) {
    let publicKey: Certificate.PublicKey
    switch CSRPolicy.evaluate(pem: message.csr, caller: caller) {
    case .sign(let key): publicKey = key
    case .malformed(let reason): throw self.refuse(.invalidArgument, reason, caller: caller)
    case .forbidden(let reason): throw self.refuse(.permissionDenied, reason, caller: caller)
    }
    let requested = message.validityDuration
    let ttl = requested > 0 ? min(Duration.seconds(requested), self.maximumTTL) : self.maximumTTL
    let chain: [Certificate]
    let bundle: TrustBundle
    do {
      (chain, bundle) = try await self.ca.sign(publicKey: publicKey, identity: caller, ttl: ttl, now: self.now())
    } catch {
      self.logger.error("signing failed", metadata: ["identity": "\(caller)", "error": "\(error)"])
      throw RPCError(code: .internalError, message: error.message)
    }
    var response = Istio_V1_Auth_IstioCertificateResponse()
    let roots = try bundle.roots.map { try $0.pemString() + "\n" }
    // Like istiod, the last element of cert_chain is the whole root bundle, one PEM after another.
    response.certChain = try chain.map { try $0.pemString() + "\n" } + [roots.joined()]
    response.rootCert.caCert = roots
    self.logger.info(
      "signed certificate",
      metadata: ["identity": "\(caller)", "serial": "\(chain[0].serialHex)", "ttl": "\(DurationParser.format(ttl))"]
    )
    return (ServerResponse(message: response), chain[0])
  }

  package static let impersonatedIdentityKey = "ImpersonatedIdentity"

  static let reasonLength = 512

  private func impersonate(_ value: Google_Protobuf_Value, by node: SPIFFEID) throws -> SPIFFEID {
    guard case .stringValue(let text) = value.kind, let identity = try? SPIFFEID(parsing: text) else {
      throw self.refuse(.invalidArgument, "ImpersonatedIdentity must be a SPIFFE ID", caller: node)
    }
    guard self.trustedNodeIdentities.contains(node) else {
      throw self.refuse(
        .permissionDenied,
        "\(node) may not request certificates for \(identity): it is not a trusted node identity",
        caller: node
      )
    }
    self.logger.info(
      "node agent requests a workload certificate", metadata: ["node": "\(node)", "identity": "\(identity)"])
    return identity
  }

  private func refuse(_ code: RPCError.Code, _ message: String, caller: SPIFFEID? = nil) -> RPCError {
    // Reasons may quote the request (a CSR's names, a token's claims).
    let message = BoundedText(message, limit: Self.reasonLength).description
    self.logger.warning(
      "refused a certificate request",
      metadata: ["status": "\(code)", "reason": "\(message)", "caller": "\(caller.map(\.description) ?? "-")"]
    )
    return RPCError(code: code, message: message)
  }
}
