import SDSAgentCore
import Testing

@Suite struct TrustDomainNameTests {
  @Test(arguments: [
    ("other.example", "other.example"),
    ("spiffe://other.example", "other.example"),
    ("td_1-x.y", "td_1-x.y"),
  ])
  func acceptsABareNameOrTheSchemeAndGivesTheBareName(text: String, name: String) throws {
    let domain = try TrustDomainName(parsing: text)
    #expect(domain.name == name)
    #expect(domain.description == name)
  }

  @Test(arguments: [
    ("spiffe://other.example/ns/a", "has no path: write spiffe://other.example or other.example"),
    ("other.example/", "empty segment"),
    ("Other.Example", "trust domain may contain only lowercase"),
    ("SPIFFE://other.example", "trust domain may contain only lowercase"),
    ("spiffe://other.example:8443", "trust domain may contain only"),
    ("https://other.example", "trust domain may contain only"),
    ("", "trust domain is empty"),
    ("spiffe://", "trust domain is empty"),
  ])
  func refusesWhatIsNotATrustDomain(text: String, reason: String) {
    #expect {
      try TrustDomainName(parsing: text)
    } throws: { error in
      "\(error)".contains(reason) && "\(error)".hasPrefix("\"\(text)\" is not a trust domain")
    }
  }

  @Test func theErrorNamesTheValueAndIsBounded() {
    #expect {
      try TrustDomainName(parsing: "spiffe://other.example/a")
    } throws: { error in
      "\(error)".hasPrefix("\"spiffe://other.example/a\" is not a trust domain")
    }
    let huge = String(repeating: "a", count: 100_000)
    #expect {
      try TrustDomainName(parsing: huge)
    } throws: { error in
      "\(error)".count < 1_000 && "\(error)".contains("at most 2048")
    }
  }

  @Test func namesOrderByTheirText() throws {
    let names = try ["b.example", "spiffe://a.example", "c.example"].map(TrustDomainName.init(parsing:))
    #expect(names.sorted().map(\.name) == ["a.example", "b.example", "c.example"])
    #expect(try TrustDomainName(parsing: "spiffe://a.example") == TrustDomainName(parsing: "a.example"))
    #expect(TrustDomainName(of: Fixtures.identity).name == "cluster.local")
  }

  /// Issue #21, class 8: trust domain names are ASCII, checked before anything compares them.
  @Test func aTrustDomainThatIsNotASCIIIsRefusedFirst() {
    #expect {
      try TrustDomainName(parsing: "\u{212A}ube.example")
    } throws: { error in
      "\(error)".contains("not ASCII")
    }
  }
}
