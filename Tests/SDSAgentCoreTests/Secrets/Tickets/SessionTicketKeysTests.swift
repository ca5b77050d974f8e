import EnvoySDSProtos
import Foundation
import Testing

@testable import SDSAgentCore

/// Session ticket keys derived from a seed and an epoch: a known-answer vector computed with an
/// independent implementation, determinism, how neighbouring epochs overlap, the epoch arithmetic
/// and the seed's bounds.
@Suite struct SessionTicketKeysTests {
  static let seed = try! SessionTicketSeed(Array(0..<32))

  static func hex(_ data: Data) -> String { data.map { String(format: "%02x", $0) }.joined() }

  /// Computed with Python's `cryptography`: `HKDF(SHA256(), length=80, salt=None,
  /// info=b"sds-agent session ticket key v1" + struct.pack(">Q", epoch)).derive(bytes(range(32)))`.
  static let vectors: [(epoch: Int64, key: String)] = [
    (
      0,
      "15134e989cc7b962c757f19ea02eb2915a6e08494d8bc716eafd3b98a853e45e77dabd57068b1b4df8e981167c5ba988"
        + "6167b9fa72589332028c002a8f3485279d71346ac3df61debc063cba84521bcf"
    ),
    (
      1000,
      "a7fff7627eae0dfd179b4f08476ce37781d489c5542b07de17294bd4ddd219dbff7ee2a893d8e4f67819059a80a60d12"
        + "88711fbb54a40a04f060f575c4efdcc92f79683fd66334aa513a5578dd410553"
    ),
    (
      176_500_000,
      "0dca492df7b17472f875de7a984b7d7f98def10992164483875e73c4c4f95db93ae3693ee28812323eeb6ee27a0290cc"
        + "426fc2e61a3a4c173434f300801f1ca590ba05fb4494ad6524de055b03439ca9"
    ),
  ]

  @Test func theDerivationMatchesAnIndependentImplementation() {
    for vector in Self.vectors {
      #expect(Self.hex(SessionTicketKeys.key(seed: Self.seed, epoch: vector.epoch)) == vector.key)
    }
    // sha256(key of epoch 1000)[:8], computed alongside.
    #expect(SessionTicketKeys(seed: Self.seed, epoch: 1000).fingerprint == "cb1f9f64")
  }

  @Test func theSameSeedAndEpochGiveTheSameKeysAndAnotherSeedOthers() throws {
    let again = try SessionTicketSeed(Array(0..<32))
    #expect(SessionTicketKeys(seed: Self.seed, epoch: 7) == SessionTicketKeys(seed: again, epoch: 7))
    let other = try SessionTicketSeed(Array(1...32))
    let mine = SessionTicketKeys(seed: Self.seed, epoch: 7)
    let theirs = SessionTicketKeys(seed: other, epoch: 7)
    #expect(Set(mine.keys).isDisjoint(with: theirs.keys))
    #expect(mine.fingerprint != theirs.fingerprint)
  }

  @Test(arguments: [Int64(0), 1, 1000, 176_500_000])
  func neighbouringEpochsOverlapAsDocumented(epoch: Int64) {
    let keys = SessionTicketKeys(seed: Self.seed, epoch: epoch)
    let next = SessionTicketKeys(seed: Self.seed, epoch: epoch + 1)
    #expect(keys.keys.count == 3)
    #expect(keys.keys.allSatisfy { $0.count == SessionTicketKeys.keyLength })
    #expect(Set(keys.keys).count == 3)
    // Current, previous, next.
    #expect(keys.keys[2] == next.keys[0])
    #expect(next.keys[1] == keys.keys[0])
    // A ticket issued in epoch e still opens in e+1 (previous), not in e+2.
    let later = SessionTicketKeys(seed: Self.seed, epoch: epoch + 2)
    #expect(!later.keys.contains(keys.keys[0]))
  }

  @Test func epochsAreUnixTimeOverThePeriod() {
    let schedule = SessionTicketSchedule(period: .seconds(10))
    #expect(schedule.epoch(at: Date(timeIntervalSince1970: 0)) == 0)
    #expect(schedule.epoch(at: Date(timeIntervalSince1970: 9.999)) == 0)
    #expect(schedule.epoch(at: Date(timeIntervalSince1970: 10)) == 1)
    #expect(schedule.epoch(at: Date(timeIntervalSince1970: 1_765_000_005)) == 176_500_000)
    #expect(
      schedule.nextBoundary(after: Date(timeIntervalSince1970: 1_765_000_005)).timeIntervalSince1970 == 1_765_000_010)
    #expect(
      schedule.nextBoundary(after: Date(timeIntervalSince1970: 1_765_000_010)).timeIntervalSince1970 == 1_765_000_020)
    #expect(SessionTicketSchedule(period: .seconds(1)).period == .seconds(10))
  }

  @Test func aSeedIsAtLeast32AndAtMost4096Bytes() {
    #expect(throws: SessionTicketSeedError.tooShort(31)) { try SessionTicketSeed([UInt8](repeating: 1, count: 31)) }
    #expect(throws: SessionTicketSeedError.tooLong(4097)) { try SessionTicketSeed([UInt8](repeating: 1, count: 4097)) }
    #expect((try? SessionTicketSeed([UInt8](repeating: 1, count: 4096))) != nil)
  }

  @Test func theServedSecretCarriesTheThreeKeysInOrderAndTheNamingAdmitsOnlyTheAllowed() throws {
    let node = NodeSecrets()
    let keys = SessionTicketKeys(seed: Self.seed, epoch: 5)
    node.updateSessionTicketKeys(keys, named: "tickets")
    let revision = node.revision
    node.updateSessionTicketKeys(keys, named: "tickets")
    #expect(node.revision == revision)
    let served = ServedSecrets(identity: .empty, shared: node.read { $0 })
    let requested = RequestedSecret(name: "tickets", resource: .sessionTicketKeys("tickets"))
    let secret = try #require(Envoy_Extensions_TransportSockets_Tls_V3_Secret(requested, from: served))
    #expect(secret.sessionTicketKeys.keys.map(\.inlineBytes) == keys.keys)
    #expect(served.revision(of: requested.resource) == revision)

    let caller = try SPIFFEID(parsing: "spiffe://cluster.local/ns/edge/sa/gateway")
    let other = try SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/app")
    var naming = SecretNaming(identity: other)
    naming.sessionTicketKeys = SessionTicketKeyAccess(
      names: [("tickets", [caller])], caller: other, checksCallers: true)
    #expect(throws: SDSRequestError.self) { try naming.resolve(["tickets"]) }
    naming.sessionTicketKeys = SessionTicketKeyAccess(
      names: [("tickets", [caller])], caller: other, checksCallers: false)
    #expect(try naming.resolve(["tickets"]) == [requested])
  }
}
