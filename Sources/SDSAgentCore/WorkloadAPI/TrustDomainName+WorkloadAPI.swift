extension TrustDomainName {
  /// The trust domain's SPIFFE ID (`spiffe://example.org`), the Workload API's key for its bundles.
  package var spiffeID: String { "spiffe://" + self.name }
}
