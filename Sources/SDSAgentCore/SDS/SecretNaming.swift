/// A resource name a stream asked for, and the resource it stands for.
public struct RequestedSecret: Sendable, Hashable {
  public let name: String
  public let resource: SecretResource

  public init(name: String, resource: SecretResource) {
    self.name = name
    self.resource = resource
  }

  public static let tlsCertificate = RequestedSecret(
    name: SecretResource.tlsCertificate.name, resource: .tlsCertificate)
  public static let validationContext = RequestedSecret(
    name: SecretResource.validationContext.name, resource: .validationContext)
}

/// The names one caller may ask for: Istio's `default` and `ROOTCA`, and SPIRE's convention of
/// the caller's own SPIFFE ID (its certificate) and `spiffe://<trust-domain>` (its bundle).
/// Another workload's SPIFFE ID is refused, not merely unknown.
public struct SecretNaming: Sendable, Equatable {
  /// Whose secrets the stream gets.
  public let identity: SPIFFEID

  public init(identity: SPIFFEID) {
    self.identity = identity
  }

  public var knownNames: [String] {
    SecretResource.knownNames + [self.identity.description, self.bundleName]
  }

  private var bundleName: String { "spiffe://\(self.identity.trustDomain)" }

  /// Resolves names, keeping the order of first mention and dropping repeats; an empty list asks
  /// for `default` and `ROOTCA`. A request with more than `SDSRequest.maximumResourceNames` names,
  /// or a name longer than `SDSRequest.maximumNameLength` bytes, is refused before any is looked at.
  public func resolve(_ names: [String]) throws(SDSRequestError) -> [RequestedSecret] {
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
      } else if name == self.identity.description {
        resource = .tlsCertificate
      } else if name == self.bundleName {
        resource = .validationContext
      } else if let other = try? SPIFFEID(parsing: name), !other.path.isEmpty {
        forbidden.append(name)
        continue
      } else {
        unknown.append(name)
        continue
      }
      let secret = RequestedSecret(name: name, resource: resource)
      if !resolved.contains(secret) { resolved.append(secret) }
    }
    guard forbidden.isEmpty else { throw .forbiddenNames(forbidden, caller: self.identity) }
    guard unknown.isEmpty else { throw .unknownResources(unknown, known: self.knownNames) }
    return resolved
  }
}
