import Foundation
import SDSAgentCore

/// The admin endpoint's revocation routes, `POST /ca/revoke` and `GET /ca/crl`, for the embedded
/// CA of the agent or of `ca serve`.
package struct RevocationRoutes: Sendable {
  let service: RevocationService<ContinuousClock>?
  /// The revocation lists served now.
  private let served: @Sendable () -> [CertificateRevocationList]
  /// Why this agent cannot revoke, if it cannot.
  let notRevocable: String?

  package init(service: RevocationService<ContinuousClock>?, host: any RevocationHost, notRevocable: String?) {
    self.service = service
    self.served = { host.servedRevocationLists }
    self.notRevocable = notRevocable
  }

  /// Revokes what the body names; the answer lists the serials revoked. A malformed body is a
  /// 400, a serial or identity the CA holds no live certificate of a 404; neither changes anything.
  package func revoke(body: [UInt8]) async -> AdminResponse {
    guard let service = self.service else {
      return .text(409, "cannot revoke: \(self.notRevocable ?? "no embedded CA")\n")
    }
    let request: RevokeRequest
    do {
      request = try RevokeRequest.decode(body)
    } catch {
      return .text(400, "invalid revocation request: \(error.message)\n")
    }
    let result: (outcome: Revocations.Outcome, reissued: [SPIFFEID])
    do {
      result = try await service.revoke(request.target, reason: request.reason)
    } catch {
      return .text(500, "cannot revoke: \(error)\n")
    }
    switch result.outcome {
    case .revoked(let entries):
      return .json(
        AdminAPI.Revoked(
          serials: entries.map(\.serial.description), reason: request.reason.rawValue,
          reissued: result.reissued.map(\.description)))
    case .unknownSerial(let serial):
      return .text(404, "unknown serial \(serial): this CA did not sign it, or it expired and was forgotten\n")
    case .expired(let serial, let notAfter):
      return .text(404, "certificate \(serial) expired at \(notAfter.formatted(.iso8601)): nothing to revoke\n")
    case .noCertificates(let identity):
      return .text(404, "\(identity) holds no unexpired certificate of this CA\n")
    case .alreadyRevoked(let serials):
      return .text(
        409, "already revoked: \(serials.map(\.description).joined(separator: ", ")); see GET /ca/crl\n")
    }
  }

  /// The revocation lists served now, PEM, one per root of the own trust domain.
  package func crl() -> AdminResponse {
    guard self.service != nil else {
      return .text(409, "no revocation list: \(self.notRevocable ?? "no embedded CA")\n")
    }
    let lists = self.served()
    guard !lists.isEmpty else {
      return .text(503, "no revocation list is served now; the agent's log says why\n")
    }
    return AdminResponse(
      status: 200, contentType: "application/x-pem-file", body: lists.map { $0.pemString + "\n" }.joined())
  }
}
