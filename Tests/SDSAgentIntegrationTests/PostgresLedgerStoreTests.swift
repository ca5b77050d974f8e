import Foundation
import Logging
import SDSAgentCAServer
import SDSAgentCore
import SDSAgentTestSupport
import Testing

/// The issuance ledger on a real PostgreSQL: signings recorded at the same moment, from one
/// replica and from two, extend one chain that verifies.
@Suite(.serialized, .enabled(if: TemporaryPostgreSQL.isInstalled), .timeLimit(.minutes(2)))
struct PostgresLedgerStoreTests {
  let key = try! KeyEncryptionKey(bytes: Array(repeating: 5, count: 32))

  private func issuance(_ index: Int, replica: String) -> LedgerChain.Issuance {
    let now = Date()
    return LedgerChain.Issuance(
      serial: String(index, radix: 16), spiffeID: "spiffe://cluster.local/ns/a/sa/w\(index % 7)",
      caller: "spiffe://cluster.local/ns/a/sa/w\(index % 7)", impersonatedBy: nil, replica: replica,
      notBefore: now, notAfter: now.addingTimeInterval(600))
  }

  @Test func concurrentSigningsOnTwoReplicasExtendOneChain() async throws {
    let server = try TemporaryPostgreSQL()
    defer { server.stop() }
    try server.psql("CREATE DATABASE ca")
    let address = try DatastoreAddress(parsing: server.url(database: "ca"))
    var ledgers: [IssuanceLedger] = []
    var stores: [PostgresLedgerStore] = []
    for name in ["a", "b"] {
      let datastore = CADatastore(
        address: address, keyEncryptionKey: self.key, replicaName: name, logger: Logger(label: "test"))
      _ = try await datastore.bootstrap(
        source: .generated, stateDirectory: TemporaryDirectory.make(), trustDomain: "cluster.local", now: Date())
      // What this test asks is that concurrent appends extend one chain; how long a transaction may
      // stall is another test's (a loaded machine running the whole suite can take seconds).
      let store = PostgresLedgerStore(logger: Logger(label: "test"), operationLimit: .seconds(60)) {
        try await datastore.connect()
      }
      stores.append(store)
      ledgers.append(IssuanceLedger(store: store, logger: Logger(label: "test")))
    }
    try await withThrowingTaskGroup { group in
      for index in 0..<60 {
        let ledger = ledgers[index % 2]
        group.addTask { try await ledger.record(self.issuance(index, replica: index % 2 == 0 ? "a" : "b")) }
      }
      try await group.waitForAll()
    }
    for ledger in ledgers { #expect(await ledger.heldCount == 0, "a row was held: an append failed") }
    let rows = try await LedgerReader(address: address, logger: Logger(label: "test")).rows(identity: nil, since: nil)
    #expect(rows.count == 60)
    #expect(Set(rows.map(\.serial)) == Set((0..<60).map { String($0, radix: 16) }))
    #expect(LedgerChain.verify(rows) == .verified(rows: 60, head: rows.last))
    for store in stores { await store.close() }
  }
}
