import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Testing

@testable import SDSAgent

/// `SessionTicketKeyWatcher` serving a real seed file into a real identity table under the manual
/// clock: each epoch boundary pushes the next epoch's keys, a new seed replaces them at once, an
/// unusable one keeps the last good keys and is counted, and a seed that cannot be used refuses
/// the start naming the setting.
@Suite(.timeLimit(.minutes(1))) struct SessionTicketKeyWatcherTests {
  let files: WatchedFiles
  let clock: ManualClock
  let settle = Duration.milliseconds(150)
  /// 5 s before an epoch boundary of a 10 s period.
  static let start = Date(timeIntervalSince1970: 1_765_000_005)

  init() throws {
    self.files = try WatchedFiles()
    self.clock = ManualClock(startDate: Self.start)
  }

  var seedPath: String { self.files.path("seed") }

  func writeSeed(_ bytes: [UInt8], mode: Int = 0o600) throws {
    try self.files.install(String(decoding: bytes, as: UTF8.self), at: self.seedPath, mode: mode)
  }

  func watcher(period: Duration = .seconds(10), checksCallers: Bool = false, callers: [SPIFFEID] = [])
    throws(ConfigurationError) -> SessionTicketKeyWatcher<ManualClock>
  {
    let clock = self.clock
    return try SessionTicketKeyWatcher(
      sources: [SessionTicketKeySource(name: "tickets", seed: self.seedPath, period: period, callers: callers)],
      node: self.files.table.node, checksCallers: checksCallers, counters: self.files.counters,
      watching: self.files.service, clock: clock, now: { clock.date }, logger: self.files.logger, settle: self.settle)
  }

  var served: SessionTicketKeys? { self.files.cache.current.sessionTicketKeys["tickets"]?.keys }

  static let seedA = Array(repeating: UInt8(ascii: "a"), count: 32)
  static let seedB = Array(repeating: UInt8(ascii: "b"), count: 40)

  @Test func eachEpochBoundaryPushesTheNextEpochsKeys() async throws {
    try self.writeSeed(Self.seedA)
    let watcher = try self.watcher()
    let seed = try SessionTicketSeed(Self.seedA)
    #expect(self.served == SessionTicketKeys(seed: seed, epoch: 176_500_000))
    #expect(watcher.served.map(\.epoch) == [176_500_000])
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await watcher.run() }
      await self.clock.sleeper(until: .seconds(5))
      self.clock.advance(by: .seconds(5))
      await self.files.cache.waitUntil { $0.sessionTicketKeys["tickets"]?.keys.epoch == 176_500_001 }
      let first = try #require(self.served)
      #expect(first == SessionTicketKeys(seed: seed, epoch: 176_500_001))
      await self.clock.sleeper(until: .seconds(15))
      self.clock.advance(by: .seconds(10))
      await self.files.cache.waitUntil { $0.sessionTicketKeys["tickets"]?.keys.epoch == 176_500_002 }
      #expect(self.served?.keys[1] == first.keys[0])
      #expect(watcher.served.map(\.fingerprint) == [self.served?.fingerprint])
      group.cancelAll()
    }
  }

  @Test func aNewSeedReplacesTheKeysAtOnceAndAnUnusableOneKeepsThem() async throws {
    try self.writeSeed(Self.seedA)
    let watcher = try self.watcher()
    let before = try #require(self.served)
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await self.files.service.run() }
      group.addTask { await watcher.run() }
      await self.clock.sleepers(atLeast: 2)
      try self.writeSeed(Self.seedB)
      await self.clock.sleeper(until: self.settle)
      self.clock.advance(by: self.settle)
      await self.files.cache.waitUntil { $0.sessionTicketKeys["tickets"]?.keys != before }
      #expect(self.served == SessionTicketKeys(seed: try SessionTicketSeed(Self.seedB), epoch: 176_500_000))
      group.cancelAll()
    }
    let replaced = self.served
    for (bytes, mode) in [(Array(Self.seedA.prefix(31)), 0o600), (Self.seedA, 0o640)] {
      try self.writeSeed(bytes, mode: mode)
      watcher.readSeeds()
      #expect(self.served == replaced)
    }
    try FileManager.default.removeItem(atPath: self.seedPath)
    watcher.readSeeds()
    #expect(self.served == replaced)
    #expect(self.files.counters[.sessionTicketSeedErrors] == 3)
    // The periodic re-check does not read, log or count an unchanged seed again.
    watcher.readSeeds(onlyChanged: true)
    #expect(self.files.counters[.sessionTicketSeedErrors] == 3)
    try self.writeSeed(Self.seedA)
    watcher.readSeeds(onlyChanged: true)
    #expect(self.served == SessionTicketKeys(seed: try SessionTicketSeed(Self.seedA), epoch: 176_500_000))
  }

  @Test(arguments: [(31, 0o600, "too_short"), (32, 0o644, "permissive_mode"), (32, 0o620, "permissive_mode")])
  func anUnusableSeedRefusesTheStartNamingTheSetting(length: Int, mode: Int, reason: String) throws {
    try self.writeSeed(Array(repeating: 7, count: length), mode: mode)
    let error = #expect(throws: ConfigurationError.self) { try self.watcher() }
    #expect(error?.key == "session-ticket-keys")
    #expect((error?.cause as? SessionTicketSeedError)?.reason == reason)
    #expect(self.served == nil)
  }

  @Test func aMissingSeedRefusesTheStart() throws {
    let error = #expect(throws: ConfigurationError.self) { try self.watcher() }
    #expect(error?.key == "session-ticket-keys")
    #expect((error?.cause as? SessionTicketSeedError) == .missing)
  }

  @Test func inNodeAgentModeOnlyTheCallersNamedHaveTheKeys() throws {
    try self.writeSeed(Self.seedA)
    let gateway = try SPIFFEID(parsing: "spiffe://cluster.local/ns/edge/sa/gateway")
    let other = try SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/app")
    let watcher = try self.watcher(checksCallers: true, callers: [gateway])
    #expect(watcher.access(for: gateway) == SessionTicketKeyAccess(allowed: ["tickets"]))
    #expect(watcher.access(for: other) == SessionTicketKeyAccess(withheld: ["tickets"]))
  }

  @Test func theSettingParsesItsFieldsAndRefusesBadOnes() throws {
    let source = try SessionTicketKeySource(parsing: "name=tickets,seed=/etc/seed,period=1h")
    #expect(source.schedule.period == .seconds(3600))
    #expect(source.description == "name=tickets,seed=/etc/seed,period=1h")
    for bad in [
      "name=tickets,seed=relative,period=1h", "name=tickets,seed=/s,period=5s", "name=tickets,seed=/s,period=1500ms",
      "name=default,seed=/s,period=1h", "name=a:b,seed=/s,period=1h", "name=t,seed=/s,period=1h,seed=/t",
      "name=t,seed=/s,period=1h,color=red", "seed=/s,period=1h",
    ] {
      #expect(throws: ConfigurationError.self, "\(bad)") { try SessionTicketKeySource(parsing: bad) }
    }
  }

  @Test func aYAMLListIsReadAndANameTakenBySecretRefused() throws {
    let config = self.files.path("config.yaml")
    let yaml = """
      state-dir: \(self.files.path("state"))
      session-ticket-keys:
        - {name: tickets, seed: /etc/seed, period: 12h}
        - {name: web, seed: /etc/other, period: 10s, callers: spiffe://cluster.local/ns/edge/sa/gateway}
      """
    try yaml.write(toFile: config, atomically: true, encoding: .utf8)
    let configuration = try ConfigurationLoader(flags: [:], environment: [:], configFile: config).load()
    #expect(
      configuration.sessionTicketKeys.map(\.description) == [
        "name=tickets,seed=/etc/seed,period=12h",
        "name=web,seed=/etc/other,period=10s,callers=spiffe://cluster.local/ns/edge/sa/gateway",
      ])
    let clash = ConfigurationLoader(
      flags: ["secret": ["name=web,ca=/etc/ca.pem"]], environment: [:], configFile: config)
    let error = #expect(throws: ConfigurationError.self) { try clash.load() }
    #expect(error?.key == "session-ticket-keys")
  }
}
