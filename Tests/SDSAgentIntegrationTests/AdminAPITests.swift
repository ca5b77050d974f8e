import Foundation
import SDSAgent
import Testing

/// The admin documents on the wire, as the routes wrote them before they were typed (what
/// operators' scripts and the end-to-end tests parse): each reads back as its value and writes
/// out byte for byte — the same keys in the same order, `null` where a value is unknown, and
/// no key where the route leaves it out.
@Suite struct AdminAPITests {
  func rewritten<Document: Codable>(_ text: String, as type: Document.Type) throws -> String {
    let document = try AdminAPI.decoder.decode(type, from: Data(text.utf8))
    return String(decoding: try AdminAPI.encoder.encode(document), as: UTF8.self)
  }

  @Test func aFailingIdentityShowsItsErrorAndNoCertificate() throws {
    let text = #"""
      {
        "identity" : "spiffe:\/\/cluster.local\/ns\/a\/sa\/b",
        "last_error" : "unavailable: the CA is down",
        "name" : "default",
        "next_rotation" : null,
        "phase" : "failing",
        "retry_at" : null,
        "streams" : 2,
        "version" : 0
      }
      """#
    #expect(try self.rewritten(text, as: AdminAPI.Secret.self) == text)
    let secret = try AdminAPI.decoder.decode(AdminAPI.Secret.self, from: Data(text.utf8))
    guard case .certificate(let certificate) = secret else {
      Issue.record("not a certificate: \(secret)")
      return
    }
    #expect(certificate.lastError == "unavailable: the CA is down" && certificate.serial == nil)
  }

  @Test func aServingIdentityShowsItsCertificateAndNoError() throws {
    let text = #"""
      {
        "chain_length" : 1,
        "identity" : "spiffe:\/\/cluster.local\/ns\/a\/sa\/b",
        "name" : "default",
        "next_rotation" : "2027-01-15T08:00:00Z",
        "not_after" : "2027-01-15T08:00:00Z",
        "not_before" : "2027-01-15T08:00:00Z",
        "phase" : "serving",
        "serial" : "0a1b",
        "streams" : 1,
        "version" : 3
      }
      """#
    #expect(try self.rewritten(text, as: AdminAPI.Secret.self) == text)
  }

  @Test func onDemandAndBundleEntriesReadAsTheirKind() throws {
    let onDemand = #"""
      {
        "holders" : 0,
        "idle_since" : "2027-01-15T08:00:00Z",
        "kind" : "on_demand",
        "last_error" : null,
        "name" : "api.example.com",
        "not_after" : null,
        "serial" : null
      }
      """#
    let bundle = #"""
      {
        "name" : "ROOTCA",
        "roots" : [
          {
            "not_after" : "2027-01-15T08:00:00Z",
            "serial" : "01",
            "subject" : "O=root"
          }
        ],
        "version" : 1
      }
      """#
    #expect(try self.rewritten(onDemand, as: AdminAPI.Secret.self) == onDemand)
    #expect(try self.rewritten(bundle, as: AdminAPI.Secret.self) == bundle)
    let secrets = try AdminAPI.decoder.decode([AdminAPI.Secret].self, from: Data("[\(onDemand),\(bundle)]".utf8))
    #expect(secrets.map(\.name) == ["api.example.com", "ROOTCA"])
    if case .onDemand(let entry) = secrets[0], case .validationContext(let roots) = secrets[1] {
      #expect(entry.holders == 0 && entry.serial == nil && roots.roots.map(\.serial) == ["01"])
    } else {
      Issue.record("read as \(secrets)")
    }
  }

  @Test func aStreamShowsNullsForWhatItHasNotSent() throws {
    let text = #"""
      {
        "id" : 7,
        "identity" : "spiffe:\/\/cluster.local\/ns\/a\/sa\/b",
        "last_acked_version" : "1",
        "last_nack_message" : null,
        "last_nacked_nonce" : null,
        "last_sent_version" : "1",
        "node_id" : "gateway-1",
        "opened_at" : "2027-01-15T08:00:00Z",
        "resources" : [
          "default",
          "ROOTCA"
        ]
      }
      """#
    #expect(try self.rewritten(text, as: AdminAPI.Stream.self) == text)
  }

  @Test func aRotationListsItsStepsWithNullsForWhatHasNotHappened() throws {
    let text = #"""
      {
        "federated" : [
          {
            "file" : "\/etc\/other.pem",
            "last_error" : null,
            "roots" : [

            ],
            "served" : false,
            "trust_domain" : "other.org"
          }
        ],
        "phase" : "switched",
        "roots" : [
          {
            "not_after" : "2027-01-15T08:00:00Z",
            "not_before" : "2027-01-15T08:00:00Z",
            "phase" : "signing",
            "serial" : "02",
            "subject" : "O=root"
          }
        ],
        "rotatable" : true,
        "rotation" : {
          "new_root" : "02",
          "next_step" : {
            "at" : "2027-01-15T08:00:00Z",
            "step" : "retire"
          },
          "old_root" : "01",
          "overlap" : "1h",
          "prepared_at" : "2027-01-15T08:00:00Z",
          "retire_at" : null,
          "switch_at" : "2027-01-15T08:00:00Z",
          "switch_deadline" : "2027-01-15T08:00:00Z",
          "switched_at" : "2027-01-15T08:00:00Z"
        },
        "trust_domain" : "cluster.local"
      }
      """#
    #expect(try self.rewritten(text, as: AdminAPI.Trust.self) == text)
    let trust = try AdminAPI.decoder.decode(AdminAPI.Trust.self, from: Data(text.utf8))
    #expect(trust.phase == .switched && trust.rotation?.nextStep.step == .retire)
    #expect(trust.rotation?.streamsAwaited == nil && trust.notRotatable == nil)
  }

  @Test func anIdleTrustSaysWhyItCannotRotate() throws {
    let text = #"""
      {
        "federated" : [

        ],
        "not_rotatable" : "operator CA files",
        "phase" : "idle",
        "roots" : [

        ],
        "rotatable" : false,
        "trust_domain" : "cluster.local"
      }
      """#
    #expect(try self.rewritten(text, as: AdminAPI.Trust.self) == text)
  }

  @Test func aRotationAnswerNamesTheIdentityAndItsNewSerial() throws {
    let text = #"""
      {
        "identity" : "spiffe:\/\/cluster.local\/ns\/a\/sa\/b",
        "serial" : "0c"
      }
      """#
    #expect(try self.rewritten(text, as: AdminAPI.Rotated.self) == text)
  }
}
