import Foundation
import SDSAgent
import SDSAgentCore
import Testing

@Suite struct RevokeRequestTests {
  func decode(_ text: String) throws(RevokeRequestError) -> RevokeRequest {
    try RevokeRequest.decode(Array(text.utf8))
  }

  @Test func aSerialOrAnIdentityWithAReasonIsRead() throws {
    #expect(
      try self.decode(#"{"serial": "00A1b2", "reason": "keyCompromise"}"#)
        == RevokeRequest(target: .serial(CertificateSerial(hex: "a1b2")!), reason: .keyCompromise))
    let identity = try SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend")
    #expect(
      try self.decode(#"{"identity": "spiffe://cluster.local/ns/web/sa/frontend"}"#).target == .identity(identity))
    #expect(try self.decode(#"{"identity": "spiffe://cluster.local/ns/web/sa/frontend"}"#).reason == .unspecified)
  }

  @Test func whatTheAgentSendsIsWhatItReads() throws {
    let request = RevokeRequest(target: .serial(CertificateSerial(hex: "ff01")!), reason: .superseded)
    #expect(try RevokeRequest.decode(Array(try JSONEncoder().encode(request))) == request)
  }

  @Test(arguments: [
    ("", "not a JSON object"),
    ("[]", "not a JSON object"),
    (#"{}"#, "exactly one"),
    (#"{"serial": "01", "identity": "spiffe://cluster.local/x"}"#, "exactly one"),
    (#"{"serial": "xyz"}"#, "not a serial number"),
    (#"{"serial": 12}"#, "not a revocation request"),
    (#"{"identity": "http://cluster.local/x"}"#, "identity"),
    (#"{"serial": "01", "reason": "certificateHold"}"#, "not one of"),
    (#"{"serial": "01", "why": "x"}"#, "unknown key \"why\""),
  ])
  func aBadBodyIsRefusedSayingWhatIsWrong(body: String, named: String) {
    #expect {
      try self.decode(body)
    } throws: { error in
      "\(error)".contains(named)
    }
  }

  @Test func aBodyOverTheLimitIsRefusedBeforeItIsParsed() {
    let body = #"{"serial": "01", "reason": ""# + String(repeating: "x", count: 5000) + #""}"#
    #expect {
      try self.decode(body)
    } throws: { error in
      "\(error)".contains("at most 4096")
    }
  }
}
