/// A Kubernetes service account, as named by a token's `sub` claim
/// (`system:serviceaccount:<namespace>:<name>`), and the SPIFFE ID Istio derives from it.
package struct ServiceAccount: Sendable, Hashable {
  package let namespace: String
  package let name: String

  package init?(subject: String) {
    let parts = subject.split(separator: ":", omittingEmptySubsequences: false)
    guard parts.count == 4, parts[0] == "system", parts[1] == "serviceaccount", !parts[2].isEmpty, !parts[3].isEmpty
    else { return nil }
    self.namespace = String(parts[2])
    self.name = String(parts[3])
  }

  package func spiffeID(trustDomain: String) throws(SPIFFEIDError) -> SPIFFEID {
    try SPIFFEID(trustDomain: trustDomain, namespace: self.namespace, serviceAccount: self.name)
  }
}
