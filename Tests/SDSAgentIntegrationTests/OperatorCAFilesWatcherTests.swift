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

/// `OperatorCAFilesWatcher` following the operator's CA files laid out as a Kubernetes secret
/// mount (`tls.crt -> ..data/tls.crt`, `..data -> ..1`), under the manual clock, with the
/// identity supervisor issuing from the embedded CA: a pair swapped at once is adopted after the
/// settle delay; a pair written one file at a time only once both match; a pair that cannot be
/// used is counted and the running CA keeps signing.
@Suite(.timeLimit(.minutes(1))) struct OperatorCAFilesWatcherTests {
  let files: WatchedFiles
  let mount: String
  let ca: EmbeddedCA
  let supervisor: IdentitySupervisor<ManualClock>
  let replacement: OperatorCAReplacement
  let watcher: OperatorCAFilesWatcher
  let settle = Duration.milliseconds(150)

  init() throws {
    self.files = try WatchedFiles()
    self.mount = self.files.path("ca")
    try Self.writePair(self.files.ownRoot, into: self.mount + "/..1")
    try FileManager.default.createSymbolicLink(atPath: self.mount + "/..data", withDestinationPath: "..1")
    for file in ["tls.crt", "tls.key"] {
      try FileManager.default.createSymbolicLink(atPath: self.mount + "/" + file, withDestinationPath: "..data/" + file)
    }
    let clock = self.files.clock
    self.ca = EmbeddedCA(EmbeddedCA.Roots(signing: self.files.ownRoot))
    self.supervisor = IdentitySupervisor(
      table: self.files.table, authority: self.ca, counters: self.files.counters, clock: clock, now: { clock.date },
      random: { 1 }, wallClockCheck: nil, logger: self.files.logger)
    let replacement = OperatorCAReplacement(
      ca: self.ca, table: self.files.table, now: { clock.date }, logger: self.files.logger)
    self.replacement = replacement
    self.watcher = OperatorCAFilesWatcher(
      files: OperatorCAFilesWatcher.Files(
        certificate: self.mount + "/tls.crt", key: self.mount + "/tls.key", chain: nil),
      replace: { try await replacement.replace(with: $0) }, counters: self.files.counters, watching: self.files.service,
      clock: clock, settle: self.settle, logger: self.files.logger)
  }

  /// Writes `material`'s certificate and key into `directory` (created), the key 0600.
  static func writePair(_ material: CAMaterial, key: CAMaterial? = nil, keyMode: Int = 0o600, into directory: String)
    throws
  {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    try Self.write(WatchedFiles.pem(material), to: directory + "/tls.crt", mode: 0o644)
    try Self.write(
      (key ?? material).privateKey.serializeAsPEM().pemString, to: directory + "/tls.key", mode: keyMode)
  }

  static func write(_ text: String, to path: String, mode: Int) throws {
    #expect(FileManager.default.createFile(atPath: path, contents: Data(text.utf8)))
    try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
  }

  /// Points `..data` at `directory` in one rename, as the kubelet does.
  func swapData(to directory: String) throws {
    try FileManager.default.createSymbolicLink(atPath: self.mount + "/..data_tmp", withDestinationPath: directory)
    #expect(rename(self.mount + "/..data_tmp", self.mount + "/..data") == 0)
  }

  static func root(_ name: String) throws -> CAMaterial {
    try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Date(), commonName: name)
  }

  var served: Set<Certificate> { Set(self.files.cache.current.trust?.own.roots ?? []) }
  var signing: Certificate { self.ca.roots.signing.certificate }

  /// The reasons counted so far.
  var refusals: [String] {
    self.files.counters.series.filter { $0.series.name == .operatorCAErrors }.flatMap(\.series.labels).map(\.value)
  }

  func running(_ body: () async throws -> Void) async throws {
    try await self.supervisor.performDueWork(for: self.files.table.pinnedIdentity)
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await self.files.service.run() }
      group.addTask { await self.supervisor.run() }
      group.addTask { await self.watcher.run() }
      try await body()
      group.cancelAll()
    }
  }

  /// Waits until the watcher waits out the settle delay ending at `offset`, then lets it pass.
  func settled(at offset: Duration) async {
    await self.files.clock.sleeper(until: offset)
    self.files.clock.advance(by: self.settle)
  }

  @Test func aPairSwappedByADataRenameIsAdoptedOnceTheSettleDelayIsOver() async throws {
    let old = self.files.ownRoot.certificate
    let next = try Self.root("next")
    try Self.writePair(next, into: self.mount + "/..2")
    try await self.running {
      try self.swapData(to: "..2")
      await self.files.clock.sleeper(until: self.settle)
      #expect(self.signing == old, "adopted before the settle delay was over")
      self.files.clock.advance(by: self.settle)
      await self.files.cache.waitUntil { $0.svid?.leaf.issuer == next.certificate.subject }
      #expect(self.signing == next.certificate)
      #expect(self.served == [old, next.certificate])
      #expect(self.replacement.previousRootRetiresAt != nil)
      #expect(self.refusals.isEmpty)
    }
  }

  @Test func aPairWrittenOneFileAtATimeIsAdoptedOnlyOnceBothMatch() async throws {
    let old = self.files.ownRoot.certificate
    let next = try Self.root("next")
    try await self.running {
      try self.files.install(next.privateKey.serializeAsPEM().pemString, at: self.mount + "/..1/tls.key")
      await self.settled(at: self.settle)
      await self.files.counters.waitUntil { $0[.operatorCAErrors] == 1 }
      #expect(self.refusals == ["unusable"])
      #expect(self.signing == old)
      #expect(self.served == [old])

      try self.files.install(try WatchedFiles.pem(next), at: self.mount + "/..1/tls.crt", mode: 0o644)
      await self.settled(at: self.settle * 2)
      await self.files.cache.waitUntil { $0.svid?.leaf.issuer == next.certificate.subject }
      #expect(self.signing == next.certificate)
      #expect(self.served == [old, next.certificate])
      #expect(self.files.counters[.operatorCAErrors] == 1)
    }
  }

  @Test func aPairThatCannotBeUsedIsCountedAndTheRunningCAKeepsSigning() async throws {
    let old = self.files.ownRoot.certificate
    let next = try Self.root("next")
    try Self.writePair(next, key: try Self.root("other"), into: self.mount + "/..2")
    try Self.writePair(next, keyMode: 0o644, into: self.mount + "/..3")
    try await self.running {
      let issued = self.files.cache.current.svid?.leaf.serialHex
      try self.swapData(to: "..2")
      await self.settled(at: self.settle)
      await self.files.counters.waitUntil { $0[.operatorCAErrors] == 1 }

      try self.swapData(to: "..3")
      await self.settled(at: self.settle * 2)
      await self.files.counters.waitUntil { $0[.operatorCAErrors] == 2 }
      #expect(self.refusals.sorted() == ["unreadable", "unusable"])
      #expect(self.signing == old)
      #expect(self.served == [old])
      #expect(self.files.cache.current.svid?.leaf.serialHex == issued, "re-issued although the CA files were refused")
    }
  }

  @Test func aReloadMovesTheWatchToTheFilesItNames() async throws {
    let moved = self.files.path("moved")
    let next = try Self.root("next")
    try Self.writePair(self.files.ownRoot, into: moved)
    #expect(self.watcher.watchedDirectories == [self.mount, self.mount + "/..1"])
    self.watcher.reconfigure(
      OperatorCAFilesWatcher.Files(certificate: moved + "/tls.crt", key: moved + "/tls.key", chain: nil))
    #expect(self.watcher.watchedDirectories == [moved])
    try await self.running {
      try self.files.install(next.privateKey.serializeAsPEM().pemString, at: moved + "/tls.key")
      try self.files.install(try WatchedFiles.pem(next), at: moved + "/tls.crt", mode: 0o644)
      await self.settled(at: self.settle)
      await self.files.cache.waitUntil { $0.svid?.leaf.issuer == next.certificate.subject }
      #expect(self.signing == next.certificate)
      #expect(self.refusals.isEmpty)
    }
  }
}
