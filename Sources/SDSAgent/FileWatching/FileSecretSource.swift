import SDSAgentCore

/// A secret the operator names, read from files: a TLS certificate `name=web,cert=…,key=…`
/// (optionally `ocsp-staple=…`), a validation context `name=clients,ca=…` (optionally `crl=…`), or a
/// generic secret `name=token,generic=…` (or `generic.KEY=…` for each key of a multi-key one).
package struct FileSecretSource: Sendable, Hashable, CustomStringConvertible {
  package enum Files: Sendable, Hashable {
    case tlsCertificate(cert: String, key: String, ocspStaple: String?)
    case validationContext(ca: String, crl: String?)
    /// One file (`generic=FILE`), or one per key (`generic.KEY=FILE`), served as `generic_secret`.
    case generic(GenericSecretFiles)
  }

  package let name: String
  package let files: Files
  /// In node-agent mode, the identities that may have the secret (`callers=ID+ID`).
  package let callers: [SPIFFEID]

  package static let syntax =
    "name=NAME,cert=FILE,key=FILE[,ocsp-staple=FILE] or name=NAME,ca=FILE[,crl=FILE] or name=NAME,generic=FILE "
    + "or name=NAME,generic.KEY=FILE[,generic.KEY=FILE…] (generic: {KEY: FILE} in YAML), and in node-agent "
    + "mode callers=SPIFFE-ID[+SPIFFE-ID…] (a mapping in YAML)"

  package init(name: String, files: Files, callers: [SPIFFEID] = []) {
    self.name = name
    self.files = files
    self.callers = callers
  }

  /// An on-the-fly name's files, followed like a configured secret's.
  package init(_ secret: OnTheFlyFileSecret) {
    switch secret.files {
    case .tlsCertificate(let cert, let key):
      self.init(name: secret.name, files: .tlsCertificate(cert: cert, key: key, ocspStaple: nil))
    case .validationContext(let ca):
      self.init(name: secret.name, files: .validationContext(ca: ca, crl: nil))
    }
  }

  package var paths: [String] {
    switch self.files {
    case .tlsCertificate(let cert, let key, let ocsp): [cert, key] + (ocsp.map { [$0] } ?? [])
    case .validationContext(let ca, let crl): [ca] + (crl.map { [$0] } ?? [])
    case .generic(let files): files.paths
    }
  }

  package var description: String {
    let files =
      switch self.files {
      case .tlsCertificate(let cert, let key, let ocsp):
        "name=\(self.name),cert=\(cert),key=\(key)" + (ocsp.map { ",ocsp-staple=\($0)" } ?? "")
      case .validationContext(let ca, let crl): "name=\(self.name),ca=\(ca)" + (crl.map { ",crl=\($0)" } ?? "")
      case .generic(let files): "name=\(self.name)," + files.description
      }
    return files + (self.callers.isEmpty ? "" : ",callers=" + self.callers.map(\.description).joined(separator: "+"))
  }

  package init(parsing text: String) throws(ConfigurationError) {
    var fields: [String: String] = [:]
    for part in text.split(separator: ",", omittingEmptySubsequences: false) {
      guard let equals = part.firstIndex(of: "="), equals != part.startIndex else {
        throw ConfigurationError(key: "secret", value: text, allowed: Self.syntax)
      }
      let key = String(part[..<equals])
      guard Self.keys.contains(key) || key.hasPrefix(GenericSecretFiles.keyPrefix) else {
        throw ConfigurationError(
          key: "secret", value: "\(BoundedText(key, limit: 40))",
          allowed: "the keys name, cert, key, ocsp-staple, ca, crl, generic, generic.KEY and callers (unknown key)")
      }
      guard fields[key] == nil else {
        throw ConfigurationError(key: "secret", value: key, allowed: "each key once per secret")
      }
      let value = String(part[part.index(after: equals)...])
      guard key == "name" || key == "callers" || value.hasPrefix("/") else {
        throw ConfigurationError(
          key: "secret", value: "\(key)=\(BoundedText(value, limit: 80))", allowed: "an absolute path")
      }
      fields[key] = value
    }
    guard let name = fields["name"], !name.isEmpty, name.utf8.count <= 253, !name.contains(":") else {
      throw ConfigurationError(
        key: "secret", value: text, allowed: "a name (no ':', at most 253 bytes); " + Self.syntax)
    }
    guard SecretResource(name: name) == nil, name != SecretResource.allTrustDomainsName, !name.hasPrefix("spiffe://")
    else {
      throw ConfigurationError(key: "secret", value: name, allowed: "a name that is not one of the agent's own")
    }
    var callers: [SPIFFEID] = []
    for text in (fields["callers"] ?? "").split(separator: "+") {
      do throws(SPIFFEIDError) {
        callers.append(try SPIFFEID(parsing: String(text)))
      } catch {
        throw ConfigurationError(
          key: "secret", value: "callers of \(name)", allowed: "SPIFFE IDs joined by + (\(error.reason))")
      }
    }
    if let generic = try GenericSecretFiles(fields: fields, secret: name) {
      self.init(name: name, files: .generic(generic), callers: callers)
      return
    }
    switch (fields["cert"], fields["key"], fields["ca"]) {
    case (let cert?, let key?, nil) where fields["crl"] == nil:
      self.init(
        name: name, files: .tlsCertificate(cert: cert, key: key, ocspStaple: fields["ocsp-staple"]), callers: callers)
    case (nil, nil, let ca?) where fields["ocsp-staple"] == nil:
      self.init(name: name, files: .validationContext(ca: ca, crl: fields["crl"]), callers: callers)
    default:
      throw ConfigurationError(key: "secret", value: name, allowed: Self.syntax)
    }
  }

  private static let keys: Set<String> = ["name", "cert", "key", "ocsp-staple", "ca", "crl", "generic", "callers"]
}
