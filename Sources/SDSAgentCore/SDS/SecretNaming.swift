/// A resource name a stream asked for, and the resource it stands for.
package struct RequestedSecret: Sendable, Hashable {
  package let name: String
  package let resource: SecretResource

  package init(name: String, resource: SecretResource) {
    self.name = name
    self.resource = resource
  }

  package static let tlsCertificate = RequestedSecret(
    name: SecretResource.tlsCertificate.name, resource: .tlsCertificate)
  package static let validationContext = RequestedSecret(
    name: SecretResource.validationContext.name, resource: .validationContext)
}

/// The names one caller may ask for: Istio's `default` and `ROOTCA`, and SPIRE's names: the
/// caller's own SPIFFE ID (its certificate), `spiffe://<trust-domain>` (that domain's bundle)
/// and `ALL` (every bundle). Another workload's SPIFFE ID is refused, not merely unknown.
package struct SecretNaming: Sendable, Equatable {
  /// Whose secrets the stream gets.
  package let identity: SPIFFEID
  /// Whether `spiffe://<trust-domain>` is served for Envoy's SPIFFE certificate validator (and
  /// `ALL` at all), or as a plain `trusted_ca`.
  package var spiffeValidator: Bool
  /// Whether other names are DNS names of on-demand server certificates.
  package var onDemand: Bool
  /// On-demand names are served, but not to this caller (`--on-demand-callers`): a DNS name is
  /// PERMISSION_DENIED.
  package var onDemandWithheld = false
  /// Names of secrets read from files that this caller may have.
  package var files: Set<String>
  /// Names of secrets read from files that other callers may have, and this one not.
  package var withheldFiles: Set<String>
  /// Where `file-cert:` and `file-root:` names may point, and who may have them.
  package var onTheFlyFiles: OnTheFlyFilePolicy
  /// Whether `jwt-svid:<audience>` names are served, and if not, why.
  package var jwtSVIDs = JWTSVIDNames.notSigned
  /// Names of session ticket keys this caller may have, and those only other callers may.
  package var sessionTicketKeys = SessionTicketKeyAccess()

  package init(
    identity: SPIFFEID, spiffeValidator: Bool = true, onDemand: Bool = false, files: Set<String> = [],
    withheldFiles: Set<String> = [], onTheFlyFiles: OnTheFlyFilePolicy = OnTheFlyFilePolicy()
  ) {
    self.identity = identity
    self.spiffeValidator = spiffeValidator
    self.onDemand = onDemand
    self.files = files
    self.withheldFiles = withheldFiles
    self.onTheFlyFiles = onTheFlyFiles
  }

  /// The names served, given the trust domains whose bundles are held.
  package func knownNames(trustDomains: Set<TrustDomainName>) -> [String] {
    let named: [String] = self.files.sorted() + self.sessionTicketKeys.allowed.sorted()
    return SecretResource.knownNames + named + [self.identity.description]
      + trustDomains.sorted().map { "spiffe://\($0)" }
      + (self.spiffeValidator ? [SecretResource.allTrustDomainsName] : [])
  }

  /// Resolves names, keeping the order of first mention and dropping repeats; an empty list asks
  /// for `default` and `ROOTCA`. A request with more than `SDSRequest.maximumResourceNames` names,
  /// or a name longer than `SDSRequest.maximumNameLength` bytes, is refused before any is looked at.
  /// `trustDomains` are the domains whose bundles are held (by default the caller's own), read
  /// only if a name is a trust domain's: every stream's request is resolved, and the set is built.
  /// With on-demand names, `refused` are those the agent will not mint.
  package func resolve(
    _ names: [String], trustDomains: @autoclosure () -> Set<TrustDomainName>? = nil, refused: Set<String> = []
  ) throws(SDSRequestError) -> [RequestedSecret] {
    var held: Set<TrustDomainName>?
    func heldDomains() -> Set<TrustDomainName> {
      if let held { return held }
      let domains = trustDomains() ?? [TrustDomainName(of: self.identity)]
      held = domains
      return domains
    }
    guard !names.isEmpty else { return [.tlsCertificate, .validationContext] }
    guard names.count <= SDSRequest.maximumResourceNames else { throw .tooManyNames(names.count) }
    if let long = names.first(where: { $0.utf8.count > SDSRequest.maximumNameLength }) {
      throw .nameTooLong(long)
    }
    var resolved: [RequestedSecret] = []
    var unknown: [String] = []
    var forbidden: [String] = []
    for name in names {
      let resource: SecretResource
      if let known = SecretResource(name: name) {
        resource = known
      } else if self.files.contains(name) {
        resource = .file(name)
      } else if self.withheldFiles.contains(name) {
        throw .secretWithheld([name], caller: self.identity)
      } else if let named = Self.credentialName(name), self.files.contains(named) {
        resource = .file(named)
      } else if let named = Self.credentialName(name), self.withheldFiles.contains(named) {
        throw .secretWithheld([name], caller: self.identity)
      } else if self.sessionTicketKeys.allowed.contains(name) {
        resource = .sessionTicketKeys(name)
      } else if self.sessionTicketKeys.withheld.contains(name) {
        throw .secretWithheld([name], caller: self.identity)
      } else if JWTAudience.isJWTSVIDName(name) {
        guard let audience = try self.jwtSVIDAudience(name) else {
          unknown.append(name)
          continue
        }
        resource = .jwtSVID(audience)
      } else if OnTheFlyFileSecret.isOnTheFly(name) {
        _ = try self.onTheFlyFiles.admit(name, for: self.identity)
        resource = .file(name)
      } else if name.utf8.elementsEqual(self.identity.description.utf8) {
        resource = .tlsCertificate
      } else if name == SecretResource.allTrustDomainsName {
        guard self.spiffeValidator else { throw .allNeedsSPIFFEValidator }
        resource = .allTrustDomains
      } else if let other = try? SPIFFEID(parsing: name) {
        guard other.path.isEmpty else {
          forbidden.append(name)
          continue
        }
        let domain = TrustDomainName(of: other)
        guard heldDomains().contains(domain) else {
          unknown.append(name)
          continue
        }
        resource = .trustDomain(domain, spiffeValidator: self.spiffeValidator)
      } else if self.onDemand {
        let dnsName = refused.contains(name) ? nil : try? DNSName(parsing: name)
        resource = dnsName.map(SecretResource.onDemand) ?? .refused(name)
      } else if self.onDemandWithheld, (try? DNSName(parsing: name)) != nil {
        throw .onDemandWithheld([name], caller: self.identity)
      } else {
        unknown.append(name)
        continue
      }
      let secret = RequestedSecret(name: name, resource: resource)
      if !resolved.contains(secret) { resolved.append(secret) }
    }
    guard forbidden.isEmpty else { throw .forbiddenNames(forbidden, caller: self.identity) }
    guard unknown.isEmpty else {
      throw .unknownResources(unknown, known: self.knownNames(trustDomains: heldDomains()))
    }
    return resolved
  }
}
