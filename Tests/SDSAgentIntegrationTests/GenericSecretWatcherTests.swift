import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Testing

@testable import SDSAgent

/// A generic secret followed like the other file secrets, under the manual clock: a rewrite is
/// served once the settle delay is over; an empty file and a vanished one keep the last good
/// value, counted by reason; a file others may write is refused like a key.
@Suite(.timeLimit(.minutes(1))) struct GenericSecretWatcherTests {
  let files: WatchedFiles
  let watcher: FileSecretWatcher
  let settle = Duration.milliseconds(150)

  init() throws {
    self.files = try WatchedFiles()
    try self.files.install("first\n", at: self.files.path("token"))
    try self.files.install("edge", at: self.files.path("client-id"))
    self.watcher = FileSecretWatcher(
      sources: [
        FileSecretSource(name: "token", files: .generic(.single(self.files.path("token")))),
        FileSecretSource(
          name: "oauth", files: .generic(.keyed([.init(key: "client-id", path: self.files.path("client-id"))]))),
      ],
      keyMaterial: AgentKeyMaterial(stateDirectory: self.files.path("state"), caKey: nil), table: self.files.table,
      counters: self.files.counters, watching: self.files.service, clock: self.files.clock, settle: self.settle,
      safetyInterval: .seconds(10), logger: self.files.logger)
  }

  func served(_ name: String = "token") -> String? {
    self.files.cache.current.files[name]?.content.genericSecret.map {
      String(decoding: $0.secret.inlineBytes, as: UTF8.self)
    }
  }

  func running(_ body: () async throws -> Void) async throws {
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await self.files.service.run() }
      group.addTask { await self.watcher.run() }
      try await body()
      group.cancelAll()
    }
  }

  /// Waits until the watcher waits out the settle delay after a change, then lets it pass.
  func settled() async {
    await self.files.clock.sleeper(until: self.files.clock.now.offset + self.settle)
    self.files.clock.advance(by: self.settle)
  }

  @Test func bothKindsAreServedAtStart() throws {
    #expect(self.served() == "first\n")
    let oauth = try #require(self.files.cache.current.files["oauth"]?.content.genericSecret)
    #expect(oauth.secrets["client-id"]?.inlineBytes == Data("edge".utf8))
  }

  @Test func aRewriteIsServedAndEmptyOrVanishedFilesKeepTheLastGoodValue() async throws {
    try await self.running {
      try self.files.install("second", at: self.files.path("token"))
      await self.settled()
      await self.files.cache.waitUntil {
        $0.files["token"]?.content.genericSecret?.secret.inlineBytes == Data("second".utf8)
      }

      try self.files.install("\n", at: self.files.path("token"))
      await self.settled()
      await self.files.counters.waitUntil { $0[.fileSecretErrors] == 1 }
      #expect(self.watcher.current.first { $0.source.name == "token" }?.failure?.reason == .empty)
      #expect(self.served() == "second")

      #expect(unlink(self.files.path("token")) == 0)
      await self.settled()
      await self.files.counters.waitUntil { $0[.fileSecretErrors] == 2 }
      #expect(self.watcher.current.first { $0.source.name == "token" }?.failure?.reason == .missing)
      #expect(self.served() == "second")

      try self.files.install("third", at: self.files.path("token"))
      await self.settled()
      await self.files.cache.waitUntil {
        $0.files["token"]?.content.genericSecret?.secret.inlineBytes == Data("third".utf8)
      }
      #expect(self.watcher.current.first { $0.source.name == "token" }?.failure == nil)
    }
  }

  @Test func aFileOthersMayWriteIsRefusedLikeAKey() async throws {
    try await self.running {
      try self.files.install("open", at: self.files.path("token"), mode: 0o666)
      await self.settled()
      await self.files.counters.waitUntil { $0[.fileSecretErrors] == 1 }
      #expect(self.watcher.current.first { $0.source.name == "token" }?.failure?.reason == .keyPermissions)
      #expect(self.served() == "first\n")
    }
  }

  @Test func inNodeAgentModeOnlyTheCallersNamedHaveIt() throws {
    let gateway = try SPIFFEID(parsing: "spiffe://cluster.local/ns/edge/sa/gateway")
    let other = try SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend")
    let watcher = FileSecretWatcher(
      sources: [
        try FileSecretSource(parsing: "name=token,generic=\(self.files.path("token")),callers=\(gateway)")
      ],
      policy: OnTheFlyFilePolicy(checksCallers: true),
      keyMaterial: AgentKeyMaterial(stateDirectory: self.files.path("state"), caKey: nil), table: self.files.table,
      counters: self.files.counters, watching: self.files.service, clock: self.files.clock, logger: self.files.logger)
    #expect(watcher.access(for: gateway).allowed == ["token"])
    #expect(watcher.access(for: other).allowed.isEmpty)
    #expect(watcher.access(for: other).withheld == ["token"])
  }
}
