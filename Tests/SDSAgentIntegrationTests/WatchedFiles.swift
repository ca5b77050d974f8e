import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Testing
import X509

@testable import SDSAgent

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// What the watcher tests share: a temporary directory, an identity table serving a trust
/// bundle (so bundle changes reach its cache), counters, a manual clock and a file watch service
/// (run by the test when inotify should be heard).
struct WatchedFiles {
  let directory = TemporaryDirectory.make()
  let clock = ManualClock()
  let counters = AgentCounters()
  let service = FileWatchService(logger: Logger(label: "files"))
  let table: IdentityTable
  let ownRoot: CAMaterial
  let logger = Logger(label: "watcher")

  init() throws {
    self.ownRoot = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Date(), commonName: "own")
    self.table = IdentityTable(
      pinned: try SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend"),
      template: IdentitySettings(
        keyType: .ecdsaP256, ttl: .seconds(100), schedule: RotationSchedule(ratio: 0.5, jitter: 0),
        backoff: Backoff(initial: .seconds(4), maximum: .seconds(4))),
      idleTimeout: .seconds(600), now: Date())
    try self.table.installTrustBundle(self.ownRoot.trustBundle)
    try FileManager.default.createDirectory(atPath: self.directory + "/state", withIntermediateDirectories: false)
  }

  var cache: SecretCache { self.table.pinnedCache }

  func path(_ name: String) -> String { self.directory + "/" + name }

  /// Replaces the file by a rename, as configuration tools and kubelet do.
  func install(_ text: String, at path: String, mode: Int = 0o600) throws {
    let temporary = path + ".tmp"
    #expect(FileManager.default.createFile(atPath: temporary, contents: Data(text.utf8)))
    try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: temporary)
    #expect(rename(temporary, path) == 0)
  }

  /// A certificate and its key, as a file secret's pair (a self-signed CA serves as a leaf).
  static func pair(_ name: String) throws -> (cert: String, key: String, material: CAMaterial) {
    let material = try CAMaterial.generateRoot(trustDomain: "example.org", now: Date(), commonName: name)
    return (
      try material.certificate.serializeAsPEM().pemString, try material.privateKey.serializeAsPEM().pemString,
      material
    )
  }

  static func pem(_ material: CAMaterial) throws -> String {
    try material.certificate.serializeAsPEM().pemString
  }
}
