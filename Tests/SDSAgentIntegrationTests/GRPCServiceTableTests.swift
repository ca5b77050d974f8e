import Testing

@testable import SDSAgent

/// Every call's `:path` goes to the service and method it names, or to none.
@Suite struct GRPCServiceTableTests {
  static let services = EchoSocketService.servicesWithSDS
  static let sds = "envoy.service.secret.v3.SecretDiscoveryService"

  @Test func aPathNamingAServedMethodIsRoutedToItsService() throws {
    for method in ["StreamSecrets", "DeltaSecrets", "FetchSecrets"] {
      let route = try #require(Self.services.route("/\(Self.sds)/\(method)"))
      #expect(route.service.name == Self.sds && route.method == method)
    }
  }

  @Test(arguments: [
    "", "/", "//", "\(sds)/StreamSecrets", "/\(sds)", "/\(sds)/", "/\(sds)/StreamSecrets/", "/\(sds)//StreamSecrets",
    "/\(sds)/streamsecrets", "/grpc.health.v1.Health/Check", "//StreamSecrets", "/\(sds)/StreamSecrets\u{301}",
    "/\(sds)\u{301}/StreamSecrets", "/é/\(sds)/StreamSecrets",
  ])
  func anyOtherPathIsRoutedNowhere(path: String) {
    #expect(Self.services.route(path) == nil)
  }
}
