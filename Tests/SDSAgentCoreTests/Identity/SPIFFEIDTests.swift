import SDSAgentCore
import Testing

@Suite struct SPIFFEIDTests {
  @Test(arguments: [
    ("spiffe://cluster.local/ns/default/sa/default", "cluster.local", "/ns/default/sa/default"),
    ("spiffe://example.org", "example.org", ""),
    ("spiffe://td_1-x.y/a.b/C_d-9", "td_1-x.y", "/a.b/C_d-9"),
  ])
  func parsesValidIDs(text: String, trustDomain: String, path: String) throws {
    let id = try SPIFFEID(parsing: text)
    #expect(id.trustDomain == trustDomain)
    #expect(id.path == path)
    #expect(id.description == text)
  }

  @Test(arguments: [
    ("https://cluster.local/ns/a", "must start with"),
    ("spiffe://", "trust domain is empty"),
    ("spiffe://Cluster.local/x", "trust domain may contain only"),
    ("spiffe://td:8080/x", "trust domain may contain only"),
    ("spiffe://td/a//b", "empty segment"),
    ("spiffe://td/a/", "empty segment"),
    ("spiffe://td/a/../b", "'.' or '..'"),
    ("spiffe://td/a?b=c", "path segments may contain only"),
  ])
  func rejectsInvalidIDs(text: String, reason: String) {
    #expect {
      try SPIFFEID(parsing: text)
    } throws: { error in
      "\(error)".contains(reason) && "\(error)".contains(text)
    }
  }

  @Test func buildsIstioServiceAccountIDs() throws {
    let id = try SPIFFEID(trustDomain: "cluster.local", namespace: "web", serviceAccount: "frontend")
    #expect(id.description == "spiffe://cluster.local/ns/web/sa/frontend")
  }
}
