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
