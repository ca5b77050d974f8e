import EnvoySDSProtos
import Foundation

/// What one identity serves that is its own: its SVID and, while the node has no trust installed,
/// the bundle its issuance came with. Everything every identity shares is a `SharedSecrets` row.
///
/// One immutable reference: every stream copies the served secrets for every push, and a copy is
/// then one retain; a change (rare) makes a new one.
struct IdentitySecrets: Sendable {
  private struct Fields: Sendable {
    var svid: CertifiedKey? {
      didSet { self.svidValidity = self.svid.map { ($0.notBefore, $0.notAfter) } }
    }
    /// The SVID's validity beside it, plain values: every stream checks it on every change, and
    /// reaching into the certificate copies it.
    var svidValidity: (notBefore: Date, notAfter: Date)?
    var tlsCertificate: Envoy_Extensions_TransportSockets_Tls_V3_TlsCertificate?
    var svidRevision: UInt64 = 0
    var trust = TrustRow()
    var jwtSVIDs = JWTSVIDRow()
  }

  private final class Storage: Sendable {
    let fields: Fields

    init(_ fields: Fields) {
      self.fields = fields
    }
  }

  private var storage: Storage

  private var fields: Fields {
    get { self.storage.fields }
    set { self.storage = Storage(newValue) }
  }

  static let empty = IdentitySecrets(storage: Storage(Fields()))

  // Read in place (`_read`), not copied: every stream reads these on every change of its
  // secrets, and a copy of a certificate retains each of its parts.
  var svid: CertifiedKey? { _read { yield self.storage.fields.svid } }
  var tlsCertificate: Envoy_Extensions_TransportSockets_Tls_V3_TlsCertificate? {
    _read { yield self.storage.fields.tlsCertificate }
  }
  var svidRevision: UInt64 { self.storage.fields.svidRevision }
  /// Whether there is an SVID and `date` is outside its validity; read without copying it.
  func svidExpired(at date: Date) -> Bool {
    guard let validity = self.storage.fields.svidValidity else { return false }
    return !(validity.notBefore <= date && date < validity.notAfter)
  }
  /// The trust served with the identity's own issuances, for when the node has none installed.
  var trust: TrustRow { _read { yield self.storage.fields.trust } }
  /// The JWT-SVIDs its SDS streams hold (`jwt-svid:<audience>`).
  var jwtSVIDs: JWTSVIDRow { _read { yield self.storage.fields.jwtSVIDs } }

  /// What moved since `before`.
  func changes(since before: IdentitySecrets) -> SecretChanges {
    let (now, then) = (self.storage.fields, before.storage.fields)
    return SecretChanges.kind(.svid, from: then.svidRevision, to: now.svidRevision)
      .union(.kind(.trustBundle, from: then.trust.bundleRevision, to: now.trust.bundleRevision))
      .union(.kind(.federation, from: then.trust.federationRevision, to: now.trust.federationRevision))
      .union(.kind(.jwtSVIDs, from: then.jwtSVIDs.revision, to: now.jwtSVIDs.revision))
  }

  /// `svid` with its certificate already encoded as Envoy's `TlsCertificate`.
  static func encoding(_ svid: CertifiedKey) throws(CertificateAuthorityError) -> IdentitySecrets {
    var certificate = Envoy_Extensions_TransportSockets_Tls_V3_TlsCertificate()
    do {
      certificate.certificateChain.inlineBytes = Data(try svid.chain.map { try $0.pemString() + "\n" }.joined().utf8)
    } catch {
      throw CertificateAuthorityError(.invalidResponse, "the certificate chain cannot be encoded as PEM", cause: error)
    }
    certificate.privateKey.inlineBytes = Data(svid.privateKey.pkcs8PEM.utf8)
    var encoded = IdentitySecrets.empty
    encoded.fields.svid = svid
    encoded.fields.tlsCertificate = certificate
    return encoded
  }

  /// Serves the SVID `encoded` holds under `revision`.
  mutating func adoptSVID(from encoded: IdentitySecrets, revision: UInt64) {
    var fields = self.fields
    fields.svid = encoded.svid
    fields.tlsCertificate = encoded.tlsCertificate
    fields.svidRevision = revision
    self.fields = fields
  }

  mutating func setTrust(_ trust: ServedTrust, revision: UInt64) {
    guard self.trust.trust != trust else { return }
    self.fields.trust.set(trust, revision: revision)
  }

  /// Stops serving the SVID; `revision` is `nil` when what is served does not change (only a
  /// stream's view of it).
  mutating func clearSVID(revision: UInt64?) {
    var fields = self.fields
    fields.svid = nil
    fields.tlsCertificate = nil
    if let revision { fields.svidRevision = revision }
    self.fields = fields
  }

  /// Serves exactly these JWT-SVIDs from now on; an audience whose token changed gets `revision`.
  mutating func setJWTSVIDs(_ svids: [JWTAudience: JWTSVID], revision: UInt64) {
    var row = self.jwtSVIDs
    row.set(svids, revision: revision)
    guard row.revision != self.jwtSVIDs.revision else { return }
    self.fields.jwtSVIDs = row
  }

  /// Stops serving the JWT-SVIDs expired by `date`, in one stream's view only (what is served,
  /// and its revision, do not change).
  mutating func dropJWTSVIDs(expiredAt date: Date) {
    self.fields.jwtSVIDs = self.jwtSVIDs.unexpired(at: date)
  }
}
