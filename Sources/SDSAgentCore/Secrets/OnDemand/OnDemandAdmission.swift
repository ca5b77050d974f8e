/// Decides which on-demand names a stream may hold: `OnDemandCertificates`.
package protocol OnDemandAdmission: Sendable {
  /// Whether streams of `caller` may ask for on-demand names at all (`--on-demand-callers`).
  func allows(caller: SPIFFEID) -> Bool
  /// Takes a hold on `name`, or says why it is refused. A refusal over the cap or the rate
  /// (`OnDemandRefusal.isTransient`) is waited for: the name is minted once both allow.
  func admit(_ name: String) -> Result<DNSName, OnDemandRefusal>
  /// Takes a hold on a name refused over the cap or the rate, now that it is minted; false while
  /// it is not.
  func admitWaiting(_ name: DNSName) -> Bool
  /// Ends a hold taken by `admit` or `admitWaiting`.
  func release(_ name: DNSName)
  /// Stops waiting for a name refused over the cap or the rate.
  func withdraw(_ name: DNSName)
}

extension OnDemandCertificates: OnDemandAdmission {}

/// The on-demand names one stream holds, waits for, or was refused, each only while the stream
/// subscribes to it: at most as many as its subscriptions.
package struct OnDemandHold: Sendable {
  package private(set) var held: Set<DNSName> = []
  /// Names refused for good (not allowed, not a host name).
  package private(set) var refused: Set<String> = []
  /// Names refused over the cap or the rate, by the names the stream asked for them by: the
  /// stream takes each once it is minted.
  package private(set) var waiting: [DNSName: Set<String>] = [:]

  package init() {}

  /// The names the stream is answered as refused: refused, or waited for.
  package var unserved: Set<String> {
    self.refused.union(self.waiting.values.joined())
  }

  /// Admits the names of a request that may be on-demand names and are not held, waited for or
  /// refused yet.
  package mutating func admit(_ names: [String], by admission: any OnDemandAdmission) {
    guard names.count <= SDSRequest.maximumResourceNames else { return }
    for name in names where Self.mayBeOnDemand(name) && !self.refused.contains(name) {
      let dnsName = try? DNSName(parsing: name)
      if let dnsName, self.held.contains(dnsName) { continue }
      if let dnsName, self.waiting[dnsName] != nil {
        self.waiting[dnsName]!.insert(name)
        continue
      }
      switch admission.admit(name) {
      case .success(let dnsName): self.held.insert(dnsName)
      case .failure(let refusal):
        if refusal.isTransient, let dnsName {
          self.waiting[dnsName] = [name]
        } else {
          self.refused.insert(name)
        }
      }
    }
  }

  /// Takes the names waited for whose certificates are served now; returns them, by the names
  /// the stream asked for them by, for the stream's state to serve them.
  package mutating func readmit(from served: ServedSecrets, by admission: any OnDemandAdmission) -> [String: DNSName] {
    var admitted: [String: DNSName] = [:]
    for (dnsName, names) in self.waiting where served.onDemand[dnsName] != nil {
      guard admission.admitWaiting(dnsName) else { continue }
      self.waiting[dnsName] = nil
      self.held.insert(dnsName)
      for name in names { admitted[name] = dnsName }
    }
    return admitted
  }

  /// Releases, withdraws and forgets what the stream no longer subscribes to.
  package mutating func keep(only subscribed: [RequestedSecret], by admission: any OnDemandAdmission) {
    let names = Set(subscribed.map(\.name))
    let held: Set<DNSName> = Set(
      subscribed.compactMap { secret in
        if case .onDemand(let name) = secret.resource { return name }
        return nil
      })
    for name in self.held.subtracting(held) {
      admission.release(name)
    }
    self.held.formIntersection(held)
    for (dnsName, asked) in self.waiting {
      let still = asked.intersection(names)
      if still.isEmpty {
        admission.withdraw(dnsName)
        self.waiting[dnsName] = nil
      } else {
        self.waiting[dnsName] = still
      }
    }
    self.refused.formIntersection(names)
  }

  package func releaseAll(by admission: any OnDemandAdmission) {
    for name in self.held { admission.release(name) }
    for name in self.waiting.keys { admission.withdraw(name) }
  }

  /// Not one of the fixed names, a SPIFFE ID or a trust domain.
  static func mayBeOnDemand(_ name: String) -> Bool {
    SecretResource(name: name) == nil && name != SecretResource.allTrustDomainsName && !name.hasPrefix("spiffe://")
      && name.utf8.count <= SDSRequest.maximumNameLength
      && !JWTAudience.isJWTSVIDName(name)
  }
}
