import EnvoySDSProtos
import Foundation

extension SpiffeWorkload_X509BundlesResponse {
  /// Every trust domain's roots, the own domain's with the others, and the own domain's CRLs.
  package init(trust: ServedTrust) throws(WorkloadAPIFailure) {
    self.init()
    var bundles = trust.federated
    bundles[trust.ownDomain] = trust.own
    for (domain, bundle) in bundles {
      self.bundles[domain.spiffeID] = try SpiffeWorkload_X509SVIDResponse.der(bundle.roots)
    }
    self.crl = trust.revocationLists.map { Data($0.derBytes) }
  }
}
