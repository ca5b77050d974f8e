import Foundation
import SDSAgentCore
import Testing

@Suite struct TrustBundleTests {
  @Test func aBundleIsASetInAStableOrder() throws {
    let older = Fixtures.material.certificate
    let newer = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Fixtures.now.addingTimeInterval(60))
      .certificate
    let bundle = TrustBundle(roots: [newer, older, newer])
    #expect(bundle.roots == [older, newer])
    #expect(bundle == TrustBundle(roots: [older, newer]))
    #expect(bundle != TrustBundle(roots: [older]))
  }
}
