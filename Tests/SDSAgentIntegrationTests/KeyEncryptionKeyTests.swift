import Foundation
import SDSAgentCAServer
import SDSAgentCore
import SDSAgentTestSupport
import Testing
import X509

/// The key-encryption key seals each CA key to its row: the right key opens it, a wrong key or a
/// row moved under another certificate does not, and the key file must be 32 private bytes.
@Suite struct KeyEncryptionKeyTests {
  let key = try! KeyEncryptionKey(bytes: Array(repeating: 7, count: 32))
  let other = try! KeyEncryptionKey(bytes: Array(repeating: 8, count: 32))
  /// A CA key as the datastore stores it: its PEM, minted here.
  let plaintext = Array(
    try! CAMaterial.generateRoot(trustDomain: "example.org", now: Date(), commonName: "kek test")
      .privateKey.serializeAsPEM().pemString.utf8)

  @Test func aSealedKeyOpensWithTheSameKeyAndRowOnly() throws {
    let context = KeyEncryptionKey.context(ofRootKey: [1, 2, 3])
    let sealed = try self.key.seal(self.plaintext, context: context)
    #expect(self.key.open(sealed, context: context) == self.plaintext)
    #expect(sealed.count == self.plaintext.count + 12 + 16)
    #expect(Data(sealed).range(of: Data("PRIVATE KEY".utf8)) == nil)
    // Sealing twice gives two ciphertexts (a fresh nonce each time).
    #expect(try self.key.seal(self.plaintext, context: context) != sealed)
  }

  @Test func aWrongKeyIsRecognisedByTheVerifier() throws {
    let verifier = try self.key.verifier()
    #expect(self.key.matches(verifier: verifier))
    #expect(!self.other.matches(verifier: verifier))
    let sealed = try self.key.seal(self.plaintext, context: KeyEncryptionKey.context(ofRootKey: [1]))
    #expect(self.other.open(sealed, context: KeyEncryptionKey.context(ofRootKey: [1])) == nil)
  }

  @Test func aKeyRowSwappedUnderAnotherCertificateDoesNotOpen() throws {
    let first = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Date(), commonName: "first")
    let second = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Date(), commonName: "second")
    let sealed = try self.key.seal(
      self.plaintext, context: KeyEncryptionKey.context(ofRootKey: try certificateBytes(first)))
    #expect(self.key.open(sealed, context: KeyEncryptionKey.context(ofRootKey: try certificateBytes(second))) == nil)
    #expect(
      self.key.open(sealed, context: KeyEncryptionKey.context(ofRootKey: try certificateBytes(first))) == self.plaintext
    )
    var altered = sealed
    altered[20] ^= 1
    #expect(self.key.open(altered, context: KeyEncryptionKey.context(ofRootKey: try certificateBytes(first))) == nil)
  }

  @Test(arguments: [(31, 0o600), (33, 0o600), (0, 0o600), (32, 0o640), (32, 0o604)])
  func aKeyFileNotOf32PrivateBytesIsRefusedNamingTheSetting(size: Int, mode: Int) throws {
    let path = TemporaryDirectory.make() + "/kek"
    #expect(
      FileManager.default.createFile(
        atPath: path, contents: Data(repeating: 1, count: size), attributes: [.posixPermissions: mode]))
    #expect {
      try KeyEncryptionKey.load(path: path)
    } throws: { error in
      let failure = error as? DatastoreError
      return failure?.code == .keyEncryptionKeyFile && failure?.description.contains("--key-encryption-key") == true
    }
  }

  @Test func aKeyFileOf32PrivateBytesLoads() throws {
    let path = TemporaryDirectory.make() + "/kek"
    #expect(
      FileManager.default.createFile(
        atPath: path, contents: Data(repeating: 7, count: 32), attributes: [.posixPermissions: 0o600]))
    let loaded = try KeyEncryptionKey.load(path: path)
    #expect(loaded.matches(verifier: try self.key.verifier()))
    #expect {
      try KeyEncryptionKey.load(path: path + ".missing")
    } throws: { error in (error as? DatastoreError)?.code == .keyEncryptionKeyFile }
  }

  private func certificateBytes(_ material: CAMaterial) throws -> [UInt8] {
    Array(try material.certificate.pemString().utf8)
  }
}
