/// Every JWT bundle the node serves, stored once as a row of `NodeSecrets`: the own trust
/// domain's (its signing, prepared and retiring keys) and the federated domains' that carry
/// `jwt-svid` keys. `FetchJWTBundles` streams are pushed when it changes, and `ValidateJWTSVID`
/// reads it.
package struct JWTBundleSet: Sendable, Equatable {
  package var own: JWTBundle?
  package var federated: [TrustDomainName: JWTBundle] = [:]

  package init(own: JWTBundle? = nil, federated: [TrustDomainName: JWTBundle] = [:]) {
    self.own = own
    self.federated = federated
  }

  /// Every bundle, the own domain's over a federated one of the same name; domains without keys
  /// have none.
  package var bundles: [JWTBundle] {
    let federated = self.federated.values.filter { $0.trustDomain != self.own?.trustDomain && !$0.keys.isEmpty }
    return (self.own.map { [$0] } ?? []) + federated.sorted { $0.trustDomain.name < $1.trustDomain.name }
  }

  package var validator: JWTSVIDValidator { JWTSVIDValidator(bundles: self.bundles) }
}
