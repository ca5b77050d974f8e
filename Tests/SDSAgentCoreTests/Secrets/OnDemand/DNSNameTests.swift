import SDSAgentCore
import Testing

@Suite struct DNSNameTests {
  @Test(arguments: ["api.example.test", "A.Example.COM", "x-1.internal.example", "xn--bcher-kva.example"])
  func hostNamesAreAccepted(text: String) throws {
    #expect(try DNSName(parsing: text).name == text.lowercased())
  }

  @Test(arguments: [
    "localhost", "10.0.0.1", "::1", "-a.example", "a-.example", "a..example", "a b.example", "*.example",
    String(repeating: "a", count: 64) + ".example", String(repeating: "a.", count: 127) + "example",
  ])
  func otherTextIsRefused(text: String) {
    #expect(throws: DNSNameError.self) { try DNSName(parsing: text) }
  }

  @Test func aWildcardMatchesOneLabel() throws {
    let pattern = try DNSNamePattern(parsing: "*.internal.example")
    #expect(pattern.matches(try DNSName(parsing: "a.internal.example")))
    #expect(pattern.matches(try DNSName(parsing: "A.Internal.Example")))
    #expect(!pattern.matches(try DNSName(parsing: "a.b.internal.example")))
    #expect(!pattern.matches(try DNSName(parsing: "internal.example")))
    #expect(!pattern.matches(try DNSName(parsing: "xinternal.example")))
    let exact = try DNSNamePattern(parsing: "api.example.test")
    #expect(exact.matches(try DNSName(parsing: "api.example.test")))
    #expect(!exact.matches(try DNSName(parsing: "x.api.example.test")))
  }
}

/// Names are ASCII before anything folds their case: a letter that lower-cases to an ASCII one
/// (KELVIN SIGN to `k`) is not that letter (issue #21, class 8).
@Suite struct DNSNameFoldingTests {
  @Test(arguments: [
    "\u{212A}ube.internal.example", "a.\u{212A}.example", "\u{212A}.internal.example", "caf\u{E9}.example",
    "a.internal.example\u{0301}",
  ])
  func aNameThatIsNotASCIIIsRefusedBeforeItsCaseIsFolded(text: String) {
    #expect {
      try DNSName(parsing: text)
    } throws: { error in
      (error as? DNSNameError)?.reason.contains("ASCII") == true
    }
  }

  @Test func aPatternThatIsNotASCIIIsRefused() {
    #expect(throws: DNSNameError.self) { try DNSNamePattern(parsing: "*.\u{212A}ube.example") }
    #expect(throws: DNSNameError.self) { try DNSNamePattern(parsing: "\u{212A}ube.example") }
  }

  @Test func aKelvinSignDoesNotMatchThePatternOfItsFoldedName() throws {
    let pattern = try DNSNamePattern(parsing: "kube.example")
    #expect(pattern.matches(try DNSName(parsing: "KUBE.example")))
    #expect((try? DNSName(parsing: "\u{212A}ube.example")).map(pattern.matches) == nil)
  }
}
