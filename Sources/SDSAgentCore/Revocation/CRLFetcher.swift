/// Reads the CRL at a distribution point: its bytes, bounded in size and in time (the edge's
/// `HTTPCRLFetcher`; a fake in tests).
package protocol CRLFetcher: Sendable {
  func fetch(_ point: CRLDistributionPoint) async throws(CRLFetchFailure) -> [UInt8]
}
