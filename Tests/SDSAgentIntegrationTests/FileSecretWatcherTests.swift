import Foundation
import Logging
import SDSAgentCore
import Testing
import X509

@testable import SDSAgent

/// Secrets from files against real files (issue #21): a read never follows a link out of the
/// directories a name may read or into the agent's key material, a secret directory holding the
/// key material is refused, and a `FetchSecrets` reads a `file-cert:` name itself.
@Suite struct FileSecretWatcherTests {
  let root: String
  let state: String
  let mounted: String

  init() throws {
    self.root = FileManager.default.temporaryDirectory.appendingPathComponent("files-\(UUID().uuidString)").path
    self.state = self.root + "/state"
    self.mounted = self.root + "/mounted"
    for directory in [self.state, self.mounted] {
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }
    // The agent's own CA: a certificate and the key that matches it, as a valid pair would be.
    let material = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Date())
    try self.write(try material.certificate.serializeAsPEM().pemString, to: self.state + "/ca-cert.pem")
    try self.write(try material.privateKey.serializeAsPEM().pemString, to: self.state + "/ca-key.pem")
  }

  func write(_ text: String, to path: String) throws {
    try text.write(toFile: path, atomically: false, encoding: .utf8)
    try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
  }

  func reader(caKey: String? = nil) -> SecretFileReader {
    SecretFileReader(keyMaterial: AgentKeyMaterial(stateDirectory: self.state, caKey: caKey).snapshot())
  }

  func reason(_ body: () throws -> Void) -> FileSecretError.Reason? {
    do {
      try body()
      return nil
    } catch let error as FileSecretError {
      return error.reason
    } catch {
      return nil
    }
  }

  @Test func aReadNeverFollowsALinkIntoTheKeyMaterialOrOutOfItsDirectories() throws {
    let links = FileManager.default
    try links.createSymbolicLink(atPath: self.mounted + "/tls.key", withDestinationPath: self.state + "/ca-key.pem")
    try links.createDirectory(atPath: self.root + "/elsewhere", withIntermediateDirectories: false)
    try self.write("elsewhere", to: self.root + "/elsewhere/file.pem")
    try links.createSymbolicLink(
      atPath: self.mounted + "/out.pem", withDestinationPath: self.root + "/elsewhere/file.pem")
    #expect(link(self.state + "/ca-key.pem", self.root + "/elsewhere/hard.key") == 0)
    try links.createSymbolicLink(atPath: self.mounted + "/..data", withDestinationPath: self.state)
    try self.write("operator key", to: self.root + "/elsewhere/operator.key")

    let reader = self.reader(caKey: self.root + "/elsewhere/operator.key")
    // A name's link into the state directory, directly or through a swapped ..data.
    #expect(self.reason { _ = try reader.read(self.mounted + "/tls.key", within: [self.mounted]) } == .agentKeyMaterial)
    #expect(
      self.reason { _ = try reader.read(self.mounted + "/..data/ca-key.pem", within: [self.mounted]) }
        == .agentKeyMaterial)
    // A named secret may lie anywhere, but never be the key material, by device and inode.
    #expect(self.reason { _ = try reader.read(self.root + "/elsewhere/hard.key", within: nil) } == .agentKeyMaterial)
    #expect(
      self.reason { _ = try reader.read(self.root + "/elsewhere/operator.key", within: nil) } == .agentKeyMaterial)
    #expect(
      self.reason { _ = try reader.read(self.mounted + "/out.pem", within: [self.mounted]) } == .outsideDirectories)
    #expect(self.reason { _ = try reader.read(self.mounted + "/none.pem", within: [self.mounted]) } == .missing)
    #expect(
      String(decoding: try reader.read(self.root + "/elsewhere/file.pem", within: nil).data, as: UTF8.self)
        == "elsewhere")
  }

  @Test func aSecretDirectoryHoldingTheKeyMaterialIsRefused() throws {
    let material = AgentKeyMaterial(stateDirectory: self.state, caKey: self.mounted + "/ca/key.pem")
    for directory in [self.root, self.state, self.mounted] {
      #expect {
        try material.refuse(secretDirectories: [directory])
      } throws: { error in
        (error as? ConfigurationError)?.key == "file-secret-dirs"
      }
    }
    try material.refuse(secretDirectories: [self.root + "/other", self.mounted + "/web"])
  }

  @Test func aFetchReadsAFileNameAtOnceAndALinkSwappedIntoTheStateIsNeverServed() async throws {
    try FileManager.default.createDirectory(atPath: self.mounted + "/..1", withIntermediateDirectories: false)
    let material = try CAMaterial.generateRoot(trustDomain: "example.org", now: Date())
    let (cert, key) = (
      try material.certificate.serializeAsPEM().pemString, try material.privateKey.serializeAsPEM().pemString
    )
    try self.write(cert, to: self.mounted + "/..1/ca-cert.pem")
    try self.write(key, to: self.mounted + "/..1/ca-key.pem")
    try FileManager.default.createSymbolicLink(atPath: self.mounted + "/..data", withDestinationPath: "..1")
    for file in ["ca-cert.pem", "ca-key.pem"] {
      try FileManager.default.createSymbolicLink(
        atPath: self.mounted + "/" + file, withDestinationPath: "..data/" + file)
    }
    let identity = try SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend")
    let table = IdentityTable(
      pinned: identity,
      template: IdentitySettings(
        keyType: .ecdsaP256, ttl: .seconds(100), schedule: RotationSchedule(ratio: 0.5, jitter: 0),
        backoff: Backoff(initial: .seconds(4), maximum: .seconds(4))),
      idleTimeout: .seconds(600), now: Date())
    let watcher = FileSecretWatcher(
      sources: [], policy: OnTheFlyFilePolicy(directories: [self.mounted]),
      keyMaterial: AgentKeyMaterial(stateDirectory: self.state, caKey: nil), table: table, counters: AgentCounters(),
      watching: FileWatchService(logger: Logger(label: "files")), logger: Logger(label: "files"))
    let name = "file-cert:\(self.mounted)/ca-cert.pem~\(self.mounted)/ca-key.pem"
    let secret = try OnTheFlyFilePolicy(directories: [self.mounted]).admit(name, for: identity)
    // A stream's hold reads nothing on the caller's thread: the watcher's task reads it.
    #expect(watcher.hold([secret], by: 7, caller: identity).isEmpty)
    #expect(table.pinnedCache.current.files[name] == nil)
    #expect(watcher.current.first { $0.source.name == name }?.content == nil)
    // A FetchSecrets cannot wait: it reads the name now.
    #expect(watcher.hold([secret], by: nil, caller: identity).isEmpty)
    #expect(await watcher.readNow([secret]).isEmpty)
    #expect(table.pinnedCache.current.files[name]?.content.digest != nil)
    let served = try #require(table.pinnedCache.current.files[name]?.content)

    // Kubernetes' ..data swap, onto the state directory: refused, the last good pair stays.
    try FileManager.default.removeItem(atPath: self.mounted + "/..data")
    try FileManager.default.createSymbolicLink(atPath: self.mounted + "/..data", withDestinationPath: self.state)
    watcher.check(force: false)
    let entry = try #require(watcher.current.first { $0.source.name == name })
    #expect(entry.failure?.reason == .agentKeyMaterial)
    #expect(table.pinnedCache.current.files[name]?.content == served)
  }
}
