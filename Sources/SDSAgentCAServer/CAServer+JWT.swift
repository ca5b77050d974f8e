import Foundation
import Logging
import SDSAgent
import SDSAgentCore

extension CAServer {
  /// The JWT signing keys of `JWTSVIDService`: in the state directory beside the CA (0600), in
  /// step with the root rotation being resumed, and rotating with it. With `--datastore` the
  /// replicas would each sign with keys of their own, which no agent could tell apart from a
  /// forgery, so the method is refused until the keys are shared in the datastore.
  static func jwtKeys(
    _ configuration: CAServerConfiguration, resuming: RootRotation?, logger: Logger
  ) throws -> JWTSVIDSigningService.Keys {
    guard configuration.datastore == nil else { return .unimplemented(Self.datastoreSignsNoJWTSVIDs) }
    let files = JWTKeyFiles(stateDirectory: configuration.stateDirectory)
    let keys = try files.load(rootPhase: resuming?.phase, ttl: configuration.jwtSVIDTTL, now: Date())
    return .ring(
      JWTKeyRing(
        keys, trustDomain: try TrustDomainName(parsing: configuration.trustDomain), ttl: configuration.jwtSVIDTTL,
        store: files, logger: logger))
  }

  static let datastoreSignsNoJWTSVIDs =
    "ca serve --datastore signs no JWT-SVIDs yet: its JWT keys are not shared by the replicas; "
    + "run ca serve without --datastore to sign JWT-SVIDs"
}

extension JWTSVIDSigningService.Keys {
  /// The key ring, if the server signs.
  var ring: JWTKeyRing? {
    if case .ring(let ring) = self { return ring }
    return nil
  }
}
