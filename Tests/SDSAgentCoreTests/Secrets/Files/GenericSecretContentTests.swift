import EnvoySDSProtos
import Foundation
import Testing

@testable import SDSAgentCore

/// Generic secrets from files: served as the files hold them, one value or one per key; a value
/// that is empty once trailing line breaks are dropped is refused (Envoy refuses every request
/// with an empty secret), so the last good one stays; what logs show is a fingerprint.
@Suite struct GenericSecretContentTests {
  @Test func oneValueIsServedAsTheSecretAndKeysFillTheMap() throws {
    let single = try FileSecretContent.generic([.init(key: nil, value: Data("token\n".utf8), shown: "/t")])
    #expect(single.kind == .genericSecret)
    #expect(single.genericSecret?.secret.inlineBytes == Data("token\n".utf8))
    #expect(single.genericSecret?.secrets.isEmpty == true)
    #expect(single.serial.hasPrefix("sha256:") && !single.serial.contains("token"))

    let keyed = try FileSecretContent.generic([
      .init(key: "client-id", value: Data("edge".utf8), shown: "/id"),
      .init(key: "client-secret", value: Data("s3cret".utf8), shown: "/secret"),
    ])
    #expect(
      keyed.genericSecret?.secrets.mapValues(\.inlineBytes) == [
        "client-id": Data("edge".utf8), "client-secret": Data("s3cret".utf8),
      ])
    #expect(keyed.genericSecret?.hasSecret == false)
  }

  @Test func aChangeOfAnyByteOrKeyIsANewVersion() throws {
    func content(_ key: String?, _ value: String) throws -> FileSecretContent {
      try FileSecretContent.generic([.init(key: key, value: Data(value.utf8), shown: "/f")])
    }
    #expect(try content(nil, "a") == content(nil, "a"))
    #expect(try content(nil, "a") != content(nil, "b"))
    #expect(try content("k", "a") != content("l", "a"))
    #expect(try content(nil, "a").serial != content(nil, "b").serial)
  }

  @Test(arguments: ["", "\n", "\r\n", "\n\n"])
  func aValueEmptyOnceLineBreaksAreDroppedIsRefused(_ value: String) {
    #expect {
      try FileSecretContent.generic([.init(key: "k", value: Data(value.utf8), shown: "/etc/token")])
    } throws: { error in
      (error as? FileSecretError).map { $0.reason == .empty && $0.message.contains("/etc/token") } ?? false
    }
  }

  @Test func aWhitespaceValueIsServedAsItIs() throws {
    let content = try FileSecretContent.generic([.init(key: nil, value: Data(" \n".utf8), shown: "/t")])
    #expect(content.genericSecret?.secret.inlineBytes == Data(" \n".utf8))
  }

  @Test func aSecretServedUnderIstiosCredentialNameIsTheNamedOne() throws {
    let naming = SecretNaming(identity: Fixtures.identity, files: ["web", "web-cacert"], withheldFiles: ["theirs"])
    let resolved = try naming.resolve(["sds://web", "sds://web-cacert", "web"])
    #expect(resolved.map(\.name) == ["sds://web", "sds://web-cacert", "web"])
    #expect(resolved.map(\.resource) == [.file("web"), .file("web-cacert"), .file("web")])
    #expect {
      try naming.resolve(["sds://theirs"])
    } throws: { error in
      (error as? SDSRequestError)?.code == .forbiddenName
    }
    for unknown in ["sds://", "sds://nothing"] {
      #expect(throws: SDSRequestError.self, "\(unknown)") { try naming.resolve([unknown]) }
    }
  }
}
