import Foundation
import Logging
import SDSAgent
import SDSAgentCore

extension CAServer {
  /// The JWT signing keys of `JWTSVIDService`: in the state directory beside the CA (0600), in
  /// step with the root rotation being resumed, and rotating with it. With `--datastore` they are
  /// derived from the shared roots' keys (`DatastoreJWTKeys`), so every replica signs with the
  /// same key and publishes the same bundle; the previous root must then outlive the tokens its
  /// key signed, so `--jwt-svid-ttl` may not exceed `--max-ttl`.
  static func jwtKeys(
    _ configuration: CAServerConfiguration, ca: EmbeddedCA, resuming: RootRotation?, logger: Logger
  ) throws -> JWTSVIDSigningService.Keys {
    let trustDomain = try TrustDomainName(parsing: configuration.trustDomain)
    guard configuration.datastore == nil else {
      guard configuration.jwtSVIDTTL <= configuration.maximumTTL else {
        throw ConfigurationError(
          key: CAServeSettings.jwtSVIDTTL.key, value: DurationParser.format(configuration.jwtSVIDTTL),
          allowed: "with --datastore, at most --max-ttl (\(DurationParser.format(configuration.maximumTTL))): "
            + "a JWT key is published while the root it is derived from is kept")
      }
      let keys = try DatastoreJWTKeys.keys(
        of: ca.roots, rotation: resuming, trustDomain: trustDomain, ttl: configuration.jwtSVIDTTL, now: Date())
      return .ring(
        JWTKeyRing(
          keys, trustDomain: trustDomain, ttl: configuration.jwtSVIDTTL,
          store: DatastoreJWTKeys(ca: ca, trustDomain: trustDomain), logger: logger))
    }
    let files = JWTKeyFiles(stateDirectory: configuration.stateDirectory)
    let keys = try files.load(rootPhase: resuming?.phase, ttl: configuration.jwtSVIDTTL, now: Date())
    return .ring(
      JWTKeyRing(keys, trustDomain: trustDomain, ttl: configuration.jwtSVIDTTL, store: files, logger: logger))
  }
}

extension JWTSVIDSigningService.Keys {
  /// The key ring, if the server signs.
  var ring: JWTKeyRing? {
    if case .ring(let ring) = self { return ring }
    return nil
  }
}
