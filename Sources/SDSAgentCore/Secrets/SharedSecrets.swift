/// The rows every identity serves alike, each stored once for the node: the trust bundles (once
/// installed), the secrets read from files and the server certificates minted on demand. A
/// stream's view (`ServedSecrets`) joins them with its identity's SVID.
///
/// One immutable reference, as `IdentitySecrets` is.
struct SharedSecrets: Sendable {
  private struct Fields: Sendable {
    var trust = TrustRow()
    var files: [String: (content: FileSecretContent, revision: UInt64)] = [:]
    var filesRevision: UInt64 = 0
    var onDemand: [DNSName: (certificate: ServerCertificate, revision: UInt64)] = [:]
    var onDemandRevision: UInt64 = 0
    var jwtBundles = JWTBundleSet()
    var jwtBundlesRevision: UInt64 = 0
    var sessionTicketKeys: [String: (keys: SessionTicketKeys, revision: UInt64)] = [:]
    var sessionTicketKeysRevision: UInt64 = 0
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

  static let empty = SharedSecrets(storage: Storage(Fields()))

  /// The trust installed for every identity; its `trust` is `nil` until one is.
  var trust: TrustRow { _read { yield self.storage.fields.trust } }
  var files: [String: (content: FileSecretContent, revision: UInt64)] { self.storage.fields.files }
  var filesRevision: UInt64 { self.storage.fields.filesRevision }
  var onDemand: [DNSName: (certificate: ServerCertificate, revision: UInt64)] { self.storage.fields.onDemand }
  var onDemandRevision: UInt64 { self.storage.fields.onDemandRevision }
  var jwtBundles: JWTBundleSet { self.storage.fields.jwtBundles }
  var jwtBundlesRevision: UInt64 { self.storage.fields.jwtBundlesRevision }
  var sessionTicketKeys: [String: (keys: SessionTicketKeys, revision: UInt64)] {
    self.storage.fields.sessionTicketKeys
  }
  var sessionTicketKeysRevision: UInt64 { self.storage.fields.sessionTicketKeysRevision }

  /// What moved since `before`.
  func changes(since before: SharedSecrets) -> SecretChanges {
    let (now, then) = (self.storage.fields, before.storage.fields)
    return SecretChanges.kind(.trustBundle, from: then.trust.bundleRevision, to: now.trust.bundleRevision)
      .union(.kind(.federation, from: then.trust.federationRevision, to: now.trust.federationRevision))
      .union(.kind(.files, from: then.filesRevision, to: now.filesRevision))
      .union(.kind(.onDemand, from: then.onDemandRevision, to: now.onDemandRevision))
      .union(.kind(.jwtBundles, from: then.jwtBundlesRevision, to: now.jwtBundlesRevision))
      .union(.kind(.sessionTicketKeys, from: then.sessionTicketKeysRevision, to: now.sessionTicketKeysRevision))
  }

  mutating func setTrust(_ trust: ServedTrust, revision: UInt64) {
    guard self.trust.trust != trust else { return }
    self.fields.trust.set(trust, revision: revision)
  }

  /// Serves these file secrets from now on; a name whose content changed gets `revision`.
  mutating func setFiles(_ contents: [String: FileSecretContent], revision: UInt64) {
    var changed = contents.count != self.files.count
    var next: [String: (content: FileSecretContent, revision: UInt64)] = [:]
    for (name, content) in contents {
      if let current = self.files[name], current.content == content {
        next[name] = current
      } else {
        next[name] = (content, revision)
        changed = true
      }
    }
    guard changed else { return }
    var fields = self.fields
    fields.files = next
    fields.filesRevision = revision
    self.fields = fields
  }

  /// Serves `certificates` from now on; a name whose certificate changed gets `revision`.
  mutating func setOnDemand(_ certificates: [DNSName: ServerCertificate], revision: UInt64) {
    var changed = certificates.count != self.onDemand.count
    var next: [DNSName: (certificate: ServerCertificate, revision: UInt64)] = [:]
    for (name, certificate) in certificates {
      if let current = self.onDemand[name], current.certificate.serial == certificate.serial {
        next[name] = current
      } else {
        next[name] = (certificate, revision)
        changed = true
      }
    }
    guard changed else { return }
    var fields = self.fields
    fields.onDemand = next
    fields.onDemandRevision = revision
    self.fields = fields
  }

  /// Serves the JWT bundles `change` makes of the current ones; `revision` if they changed.
  mutating func updateJWTBundles(_ change: (inout JWTBundleSet) -> Void, revision: UInt64) {
    var bundles = self.jwtBundles
    change(&bundles)
    guard bundles != self.jwtBundles else { return }
    var fields = self.fields
    fields.jwtBundles = bundles
    fields.jwtBundlesRevision = revision
    self.fields = fields
  }

  /// Serves `keys` under `name` from now on (nil: no longer); `revision` if they changed.
  mutating func setSessionTicketKeys(_ keys: SessionTicketKeys?, named name: String, revision: UInt64) {
    guard self.sessionTicketKeys[name]?.keys != keys else { return }
    var fields = self.fields
    fields.sessionTicketKeys[name] = keys.map { ($0, revision) }
    fields.sessionTicketKeysRevision = revision
    self.fields = fields
  }
}
