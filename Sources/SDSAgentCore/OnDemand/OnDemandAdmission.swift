/// Decides which on-demand names a stream may hold: `OnDemandCertificates`.
public protocol OnDemandAdmission: Sendable {
  /// Takes a hold on `name`, or says why it is refused.
  func admit(_ name: String) -> Result<DNSName, OnDemandRefusal>
  /// Ends a hold taken by `admit`.
  func release(_ name: DNSName)
}

extension OnDemandCertificates: OnDemandAdmission {}

/// The on-demand names one stream holds, and those it was refused.
struct OnDemandHold: Sendable {
  var held: Set<DNSName> = []
  var refused: Set<String> = []

  /// Admits the names of a request that may be on-demand names and are not held or refused yet.
  mutating func admit(_ names: [String], by admission: any OnDemandAdmission) {
    guard names.count <= SDSRequest.maximumResourceNames else { return }
    for name in names where Self.mayBeOnDemand(name) && !self.refused.contains(name) {
      if let dnsName = try? DNSName(parsing: name), self.held.contains(dnsName) { continue }
      switch admission.admit(name) {
      case .success(let dnsName): self.held.insert(dnsName)
      case .failure: self.refused.insert(name)
      }
    }
  }

  /// Releases what the stream no longer subscribes to.
  mutating func keep(only subscribed: [RequestedSecret], by admission: any OnDemandAdmission) {
    let names: Set<DNSName> = Set(
      subscribed.compactMap { secret in
        if case .onDemand(let name) = secret.resource { return name }
        return nil
      })
    for name in self.held.subtracting(names) {
      admission.release(name)
    }
    self.held.formIntersection(names)
  }

  func releaseAll(by admission: any OnDemandAdmission) {
    for name in self.held { admission.release(name) }
  }

  /// Not one of the fixed names, a SPIFFE ID or a trust domain.
  static func mayBeOnDemand(_ name: String) -> Bool {
    SecretResource(name: name) == nil && name != SecretResource.allTrustDomainsName && !name.hasPrefix("spiffe://")
      && name.utf8.count <= SDSRequest.maximumNameLength
  }
}
