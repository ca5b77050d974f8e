import Foundation
import Logging
import SDSAgent
import SDSAgentCore

extension CAServer {
  /// The JWT signing keys of `JWTSVIDService`: in the state directory beside the CA (0600), in
  /// step with the root rotation being resumed, and rotating with it. With `--datastore` they are
  /// derived from the shared roots' keys (`DatastoreJWTKeys`), so every replica signs with the
  /// same key and publishes the same bundle (`checkJWTSVIDTTL` has bounded the tokens' lifetime).
  static func jwtKeys(
    _ configuration: CAServerConfiguration, ca: EmbeddedCA, resuming: RootRotation?, logger: Logger
  ) throws -> JWTSVIDSigningService.Keys {
    let trustDomain = try TrustDomainName(parsing: configuration.trustDomain)
    guard configuration.datastore == nil else {
      let keys = try DatastoreJWTKeys.keys(
        of: ca.roots, rotation: resuming, trustDomain: trustDomain, ttl: configuration.effectiveJWTSVIDTTL, now: Date())
      return .ring(
        JWTKeyRing(
          keys, trustDomain: trustDomain, ttl: configuration.effectiveJWTSVIDTTL,
          store: DatastoreJWTKeys(ca: ca, trustDomain: trustDomain), logger: logger))
    }
    let files = JWTKeyFiles(stateDirectory: configuration.stateDirectory)
    let keys = try files.load(rootPhase: resuming?.phase, ttl: configuration.effectiveJWTSVIDTTL, now: Date())
    return .ring(
      JWTKeyRing(keys, trustDomain: trustDomain, ttl: configuration.effectiveJWTSVIDTTL, store: files, logger: logger))
  }

  /// With `--datastore`, a JWT key is published while the root it is derived from is kept: one
  /// `--max-ttl` after the switch at least, which must cover the tokens it signed.
  static func checkJWTSVIDTTL(_ configuration: CAServerConfiguration) throws(ConfigurationError) {
    guard configuration.datastore != nil, let ttl = configuration.jwtSVIDTTL, ttl > configuration.maximumTTL
    else { return }
    throw ConfigurationError(
      key: CAServeSettings.jwtSVIDTTL.key, value: DurationParser.format(ttl),
      allowed: "with --datastore, at most --max-ttl (\(DurationParser.format(configuration.maximumTTL))): "
        + "a JWT key is published while the root it is derived from is kept")
  }
}

extension CAServerConfiguration {
  /// `--jwt-svid-ttl`, or when it is not set 5m, and with `--datastore` no longer than `--max-ttl`
  /// (but not under the setting's 10s).
  package var effectiveJWTSVIDTTL: Duration {
    if let jwtSVIDTTL { return jwtSVIDTTL }
    let fallback = CAServeSettings.jwtSVIDTTL.defaultValue ?? .seconds(300)
    guard self.datastore != nil else { return fallback }
    return max(.seconds(10), min(fallback, self.maximumTTL))
  }
}

extension JWTSVIDSigningService.Keys {
  /// The key ring, if the server signs.
  var ring: JWTKeyRing? {
    if case .ring(let ring) = self { return ring }
    return nil
  }
}
