import Foundation
import SDSAgentCAServer
import SDSAgentCore
import Testing

@Suite struct LedgerReportTests {
  private let now = Date(timeIntervalSince1970: 1_800_000_000)

  @Test func sinceTakesAnRFC3339TimeOrADurationAgo() throws {
    #expect(LedgerSince.parse("2027-01-15T08:00:00Z", now: self.now) == Date(timeIntervalSince1970: 1_800_000_000))
    #expect(LedgerSince.parse("24h", now: self.now) == self.now.addingTimeInterval(-86400))
    #expect(LedgerSince.parse("yesterday", now: self.now) == nil)
    #expect(LedgerSince.parse("-5m", now: self.now) == nil)
  }

  @Test func linesNameEveryFieldAndTheNodeOnlyWhenOneAsked() {
    let first = LedgerChain.sealing(
      LedgerChain.Issuance(
        serial: "1f", spiffeID: "spiffe://td/ns/a/sa/w", caller: "spiffe://td/node", impersonatedBy: "spiffe://td/node",
        replica: "ca-a", notBefore: self.now, notAfter: self.now.addingTimeInterval(60)), after: nil)
    let second = LedgerChain.sealing(
      LedgerChain.Issuance(
        serial: "20", spiffeID: "spiffe://td/ns/a/sa/v", caller: "spiffe://td/ns/a/sa/v", impersonatedBy: nil,
        replica: "ca-b", notBefore: self.now, notAfter: self.now.addingTimeInterval(60)), after: first)
    let lines = LedgerReport.lines([first, second]).split(separator: "\n")
    #expect(lines.count == 2)
    #expect(
      lines[0].hasPrefix("1 serial=1f identity=spiffe://td/ns/a/sa/w caller=spiffe://td/node via=spiffe://td/node"))
    #expect(lines[1].contains("replica=ca-b") && !lines[1].contains("via="))
  }

  @Test func aBrokenChainIsReportedWithItsRowAndReason() throws {
    let text = LedgerReport.broken(LedgerBreak(sequence: 7, reason: .changed), json: false)
    #expect(text.contains("ledger row 7 was changed"))
    let json = LedgerReport.broken(LedgerBreak(sequence: 7, reason: .missing), json: true)
    let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
    #expect(object["sequence"] as? Int == 7 && object["reason"] as? String == "missing")
  }
}
