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

  @Test func theSpecsLengthLimitsHold() throws {
    let prefix = "spiffe://example.org/"
    let longest = prefix + String(repeating: "a", count: SPIFFEID.maximumLength - prefix.utf8.count)
    #expect(try SPIFFEID(parsing: longest).description == longest)
    #expect {
      try SPIFFEID(parsing: longest + "a")
    } throws: { error in
      "\(error)".contains("2049 bytes") && "\(error)".contains("at most 2048")
    }
    let domain = String(repeating: "d", count: SPIFFEID.maximumTrustDomainLength)
    #expect(try SPIFFEID(parsing: "spiffe://\(domain)/a").trustDomain == domain)
    #expect {
      try SPIFFEID(parsing: "spiffe://\(domain)d/a")
    } throws: { error in
      "\(error)".contains("256 bytes") && "\(error)".contains("at most 255")
    }
    #expect(throws: SPIFFEIDError.self) {
      try SPIFFEID(trustDomain: domain, path: "/" + String(repeating: "p", count: SPIFFEID.maximumLength))
    }
  }

  @Test func aHugeTextIsRefusedAtOnceAndShownCut() {
    let huge = "spiffe://cluster.local/" + String(repeating: "a/", count: 5_000_000) + "a"
    #expect {
      try SPIFFEID(parsing: huge)
    } throws: { error in
      "\(error)".contains("a SPIFFE ID is at most 2048") && "\(error)".utf8.count < 1024
    }
  }

  @Test func buildsIstioServiceAccountIDs() throws {
    let id = try SPIFFEID(trustDomain: "cluster.local", namespace: "web", serviceAccount: "frontend")
    #expect(id.description == "spiffe://cluster.local/ns/web/sa/frontend")
  }

  /// Issue #21, class 8: ASCII is checked before the text is compared with anything; a KELVIN
  /// SIGN is not a `K` (Swift's `==` would say it is).
  @Test(arguments: [
    "spiffe://cluster.local/ns/\u{212A}ube/sa/x", "spiffe://\u{212A}ube.local/ns/a/sa/b", "spiffe\u{037E}//a/b",
    "spiffe://cluster.local/ns/a/sa/b\u{0301}",
  ])
  func textThatIsNotASCIIIsRefusedFirst(text: String) {
    #expect {
      try SPIFFEID(parsing: text)
    } throws: { error in
      "\(error)".contains("not ASCII")
    }
  }
}
