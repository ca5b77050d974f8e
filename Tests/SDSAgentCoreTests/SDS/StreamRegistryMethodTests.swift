import Foundation
import SDSAgentCore
import Testing

/// The registry lists SDS streams and Workload API calls by method; only SDS streams hold a
/// bundle a root rotation waits for.
@Suite struct StreamRegistryMethodTests {
  @Test func aWorkloadAPICallIsListedButNeverAwaitedByARootRotation() throws {
    let registry = StreamRegistry()
    let bundle = TrustBundle(roots: [Fixtures.material.certificate])
    let sds = registry.open(at: Fixtures.now)
    let call = registry.open(at: Fixtures.now, method: .fetchX509SVID)
    for id in [sds, call] {
      registry.update(id) { $0.sentTrustBundle = bundle }
    }
    #expect(registry.streams.map(\.method) == [.streamSecrets, .fetchX509SVID])
    let other = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Fixtures.now).certificate
    #expect(registry.streamsNotAcknowledging(other).map(\.id) == [sds])
    registry.close(call)
    #expect(registry.streams.map(\.id) == [sds])
  }

  @Test func theMethodsAreTheServicesOwn() {
    let workloadAPI = StreamRegistry.Method.allCases.filter(\.isWorkloadAPI).map(\.rawValue)
    #expect(workloadAPI == ["FetchX509SVID", "FetchX509Bundles", "FetchJWTSVID", "FetchJWTBundles", "ValidateJWTSVID"])
    #expect(!StreamRegistry.Method.streamSecrets.isWorkloadAPI && !StreamRegistry.Method.deltaSecrets.isWorkloadAPI)
  }
}
