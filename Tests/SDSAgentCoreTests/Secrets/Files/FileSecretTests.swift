import Foundation
import SDSAgentCore
import Testing
import X509

/// Secrets from files: what is checked before a pair is served, which names may point where,
/// and who may have which named secret.
@Suite struct FileSecretTests {
  static let now = Fixtures.now

  func pem(_ certificates: [Certificate]) throws -> String {
    try certificates.map { try $0.pemString() + "\n" }.joined()
  }

  func issued() throws -> (chain: String, key: String, leaf: Certificate) {
    let issued = try Fixtures.issue(at: Self.now)
    return (try self.pem(issued.certifiedKey.chain), issued.certifiedKey.privateKey.pkcs8PEM, issued.certifiedKey.leaf)
  }

  @Test func aMatchingValidPairIsServed() throws {
    let (chain, key, leaf) = try self.issued()
    let content = try FileSecretContent.tlsCertificate(chainPEM: chain, keyPEM: key, now: Self.now)
    #expect(content.serial == leaf.serialHex && content.kind == .tlsCertificate)
    let again = try FileSecretContent.tlsCertificate(chainPEM: chain, keyPEM: key, now: Self.now)
    #expect(content == again)
  }

  @Test func aTornPairAnExpiredLeafAndGarbageAreRefusedWithTheirReason() throws {
    let (chain, _, _) = try self.issued()
    let (_, otherKey, _) = try self.issued()
    func reason(_ body: () throws -> Void) -> FileSecretError.Reason? {
      do { try body() } catch let error as FileSecretError { return error.reason } catch { return nil }
      return nil
    }
    #expect(
      reason { _ = try FileSecretContent.tlsCertificate(chainPEM: chain, keyPEM: otherKey, now: Self.now) }
        == .keyMismatch)
    let (validChain, validKey, _) = try self.issued()
    #expect(
      reason {
        _ = try FileSecretContent.tlsCertificate(
          chainPEM: validChain, keyPEM: validKey, now: Self.now.addingTimeInterval(7200))
      } == .expired)
    #expect(
      reason { _ = try FileSecretContent.tlsCertificate(chainPEM: "junk", keyPEM: validKey, now: Self.now) }
        == .unparsable)
    #expect(reason { _ = try FileSecretContent.validationContext(caPEM: validChain, now: Self.now) } == .noCA)
    let ca = try self.pem([Fixtures.material.certificate])
    #expect(try FileSecretContent.validationContext(caPEM: ca, now: Self.now).kind == .validationContext)
  }

  @Test func onTheFlyNamesOnlyUnderTheDirectories() throws {
    let secret = try OnTheFlyFileSecret(parsing: "file-cert:/etc/tls/a.pem~/etc/tls/a.key", directories: ["/etc/tls"])
    #expect(secret.files == .tlsCertificate(cert: "/etc/tls/a.pem", key: "/etc/tls/a.key"))
    #expect(
      try OnTheFlyFileSecret(parsing: "file-root:/etc/tls/ca.pem", directories: ["/etc/tls/"]).files
        == .validationContext(ca: "/etc/tls/ca.pem"))
    for bad in [
      "file-cert:/etc/tls/a.pem", "file-cert:/etc/other/a.pem~/etc/tls/a.key", "file-root:/etc/tls/../shadow",
      "file-root:etc/tls/ca.pem", "file-root:/etc/tlsx/ca.pem", "file-root:/etc/tls/./ca.pem",
    ] {
      #expect(throws: SDSRequestError.self, "\(bad)") {
        try OnTheFlyFileSecret(parsing: bad, directories: ["/etc/tls"])
      }
    }
    #expect(throws: SDSRequestError.self) {
      try OnTheFlyFileSecret(parsing: "file-root:/etc/tls/ca.pem", directories: [])
    }
  }

  @Test func aNamedSecretForOtherCallersIsPermissionDenied() throws {
    let naming = SecretNaming(identity: Fixtures.identity, files: ["mine"], withheldFiles: ["theirs"])
    #expect(try naming.resolve(["mine"]).map(\.resource) == [.file("mine")])
    #expect {
      try naming.resolve(["theirs"])
    } throws: { error in
      (error as? SDSRequestError)?.code == .forbiddenName && "\(error)".contains("theirs")
    }
  }

  @Test func inNodeAgentModeFileNamesGoOnlyToTheCallersNamedForTheirDirectory() throws {
    let frontend = try SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend")
    let backend = try SPIFFEID(parsing: "spiffe://cluster.local/ns/api/sa/backend")
    let name = "file-cert:/etc/tls/web/tls.crt~/etc/tls/web/tls.key"
    func refusal(_ policy: OnTheFlyFilePolicy, _ caller: SPIFFEID) -> String? {
      do {
        _ = try SecretNaming(identity: caller, onTheFlyFiles: policy).resolve([name])
        return nil
      } catch {
        return error.code == .forbiddenName ? error.message : "not PERMISSION_DENIED: \(error)"
      }
    }
    var policy = OnTheFlyFilePolicy(directories: ["/etc/tls"], checksCallers: true)
    #expect(refusal(policy, frontend)?.contains("file-secret-callers") == true)
    policy.callers = [
      FileSecretCallers(directory: "/etc/tls", callers: [backend]),
      try FileSecretCallers(parsing: "dir=/etc/tls/web,callers=\(frontend)"),
    ]
    #expect(refusal(policy, frontend) == nil)
    // The deepest directory decides: the backend's rule for /etc/tls does not reach /etc/tls/web.
    let denied = try #require(refusal(policy, backend))
    #expect(denied.contains("file-secret-callers") && denied.contains("/etc/tls/web") && denied.contains("\(backend)"))
    #expect(policy.confinement(of: "/etc/tls/web/tls.crt") == ["/etc/tls/web"])
    // With one identity for every caller (not node-agent mode), the directories alone decide.
    policy.checksCallers = false
    #expect(refusal(policy, backend) == nil)
    #expect(policy.confinement(of: "/etc/tls/web/tls.crt") == ["/etc/tls"])
    #expect(throws: ConfigurationError.self) { try FileSecretCallers(parsing: "dir=/etc/tls/../x,callers=\(frontend)") }
    #expect(throws: ConfigurationError.self) { try FileSecretCallers(parsing: "dir=/etc/tls") }
  }
}
