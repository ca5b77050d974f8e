import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Testing

@testable import SDSAgent

/// `FileSecretWatcher` following real files under the manual clock: a change is read `settle`
/// after inotify reports it; a bad pair keeps the last good secret and is counted; without
/// inotify the slow re-check finds the change; reload follows the new files only.
@Suite(.timeLimit(.minutes(1))) struct FileSecretWatcherFollowingTests {
  let files: WatchedFiles
  let watcher: FileSecretWatcher
  let settle = Duration.milliseconds(150)
  let recheck = Duration.seconds(10)

  init() throws {
    self.files = try WatchedFiles()
    let pair = try WatchedFiles.pair("first")
    try self.files.install(pair.cert, at: self.files.path("cert.pem"))
    try self.files.install(pair.key, at: self.files.path("key.pem"))
    self.watcher = FileSecretWatcher(
      sources: [Self.source("web", in: self.files.directory)],
      keyMaterial: AgentKeyMaterial(stateDirectory: self.files.path("state"), caKey: nil), table: self.files.table,
      counters: self.files.counters, watching: self.files.service, clock: self.files.clock, settle: self.settle,
      safetyInterval: self.recheck, logger: self.files.logger)
  }

  static func source(_ name: String, in directory: String) -> FileSecretSource {
    FileSecretSource(
      name: name, files: .tlsCertificate(cert: directory + "/cert.pem", key: directory + "/key.pem", ocspStaple: nil))
  }

  func served(_ name: String = "web") -> String? {
    self.files.cache.current.files[name]?.content.serial
  }

  func running(inotify: Bool = true, _ body: () async throws -> Void) async throws {
    try await withThrowingDiscardingTaskGroup { group in
      if inotify { group.addTask { await self.files.service.run() } }
      group.addTask { await self.watcher.run() }
      try await body()
      group.cancelAll()
    }
  }

  /// Replaces the pair and returns the new certificate's serial, once the watcher waits out
  /// the settle delay (the change is not served before it).
  func replacePair(named name: String, key: String? = nil) async throws -> String {
    let pair = try WatchedFiles.pair(name)
    try self.files.install(key ?? pair.key, at: self.files.path("key.pem"))
    try self.files.install(pair.cert, at: self.files.path("cert.pem"))
    return pair.material.certificate.serialHex
  }

  @Test func aChangedPairIsServedOnceTheSettleDelayIsOver() async throws {
    let first = try #require(self.served())
    try await self.running {
      let serial = try await self.replacePair(named: "second")
      await self.files.clock.sleeper(until: self.settle)
      #expect(self.served() == first, "served before the settle delay was over")
      self.files.clock.advance(by: self.settle)
      await self.files.cache.waitUntil { $0.files["web"]?.content.serial == serial }
      #expect(self.served() != first)
    }
  }

  @Test func aTornPairKeepsTheLastGoodSecretAndIsCounted() async throws {
    let first = try #require(self.served())
    try await self.running {
      let other = try WatchedFiles.pair("other")
      _ = try await self.replacePair(named: "second", key: other.key)
      await self.files.clock.sleeper(until: self.settle)
      self.files.clock.advance(by: self.settle)
      await self.files.counters.waitUntil { $0[.fileSecretErrors] == 1 }
      #expect(self.served() == first)
      let entry = try #require(self.watcher.current.first)
      #expect(entry.failure?.reason == .keyMismatch)
    }
  }

  @Test func withoutInotifyTheSlowRecheckFindsTheChange() async throws {
    let first = try #require(self.served())
    try await self.running(inotify: false) {
      let serial = try await self.replacePair(named: "second")
      await self.files.clock.sleeper(until: self.recheck)
      self.files.clock.advance(by: .seconds(9))
      #expect(self.served() == first)
      self.files.clock.advance(by: .seconds(1))
      await self.files.cache.waitUntil { $0.files["web"]?.content.serial == serial }
    }
  }

  @Test func reloadFollowsTheNewFilesAndLetsGoOfTheOldOnes() async throws {
    let moved = self.files.path("moved")
    try FileManager.default.createDirectory(atPath: moved, withIntermediateDirectories: false)
    #expect(self.watcher.watchedDirectories == [self.files.directory])
    let pair = try WatchedFiles.pair("moved")
    try self.files.install(pair.cert, at: moved + "/cert.pem")
    try self.files.install(pair.key, at: moved + "/key.pem")
    self.watcher.reconfigure(
      [Self.source("web", in: self.files.directory), Self.source("api", in: moved)], policy: OnTheFlyFilePolicy(),
      keyMaterial: AgentKeyMaterial(stateDirectory: self.files.path("state"), caKey: nil))
    #expect(self.watcher.watchedDirectories == [self.files.directory, moved])
    #expect(self.served("api") == pair.material.certificate.serialHex)
    self.watcher.reconfigure(
      [Self.source("api", in: moved)], policy: OnTheFlyFilePolicy(),
      keyMaterial: AgentKeyMaterial(stateDirectory: self.files.path("state"), caKey: nil))
    #expect(self.watcher.watchedDirectories == [moved])
    #expect(self.served() == nil)
  }
}
