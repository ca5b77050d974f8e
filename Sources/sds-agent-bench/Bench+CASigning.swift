import Crypto
import Foundation
import SDSAgentCore
import SDSAgentTestSupport
import X509

/// `ca serve` signings per second next to the raw crypto of a signing: its own
/// `CreateCertificate` over gRPC/TLS from the agent's `IstioCAClient` (each concurrent caller its
/// own client, node and token, as `ca-burst` makes them), without and with `--datastore` (a
/// PostgreSQL started here; the ledger writes one row per signing). Per core is signings per
/// second of `ca serve`'s own CPU time; the raw figure is a P-256 signature of a leaf's
/// to-be-signed bytes plus the verification of a CSR's signature, per second of one thread's CPU
/// time in this process. The second raw figure adds the one more signature check every signing
/// makes, of the caller's ES256 token: the crypto a signing cannot do without.
extension Bench {
  static let caSigningHeader = [
    "ledger", "concurrency", "signings/s", "ca serve CPU", "per ca serve core-second", "bench client CPU",
    "raw P-256 sign + CSR verify per core-second", "ratio (per core / raw)",
    "raw with the token's ES256 check per core-second", "ratio to it",
  ]

  func caSigning(concurrency levels: [Int], withDatastore: Bool) async throws -> [[String]] {
    let directory = try AgentProcess.temporaryDirectory()
    let fleet = try await CABurstFleet(directory: directory, agents: levels.max() ?? 1)
    let raw = try Self.rawSigningRate(fleet, seconds: self.measureSeconds)
    let rawWithToken = try Self.rawSigningRate(fleet, seconds: self.measureSeconds, checkingToken: true)
    var ledgers = ["state directory"]
    if withDatastore, TemporaryPostgreSQL.isInstalled {
      ledgers.append("PostgreSQL (`--datastore`)")
    } else if withDatastore {
      FileHandle.standardError.write(Data("ca-signing: PostgreSQL is not installed; no --datastore figure\n".utf8))
    }
    var rows: [[String]] = []
    for ledger in ledgers {
      var arguments: [String] = []
      var database: TemporaryPostgreSQL?
      defer { database?.stop() }
      if ledger != ledgers[0] {
        let started = try TemporaryPostgreSQL()
        database = started
        arguments = try Self.datastoreArguments(started, directory: directory)
      }
      // No admission cap: the figure is what the CA signs, not what it refuses.
      let replica = try await fleet.startReplica(
        self.agentBinary, name: "signing", arguments: ["--max-inflight", "0"] + arguments, in: self.children)
      for level in levels {
        let agents = try (0..<level).map { try CABurstAgent(index: $0, fleet: fleet, addresses: [replica.address]) }
        let rate = try await withThrowingTaskGroup(of: Void.self) { connections in
          for agent in agents {
            connections.addTask { try? await agent.client.run() }
          }
          defer { connections.cancelAll() }
          for agent in agents { _ = try await agent.certify() }
          return try await CallRate.measure(
            concurrency: level, seconds: self.measureSeconds, server: replica.child
          ) { task, _ in
            _ = try await agents[task].certify()
          }
        }
        rows.append([
          ledger, "\(level)", rate.rate, rate.serverShare, rate.perCore, rate.clientShare,
          String(format: "%.0f", raw), CallRate.ratio(rate.perServerCoreSecond, to: raw),
          String(format: "%.0f", rawWithToken), CallRate.ratio(rate.perServerCoreSecond, to: rawWithToken),
        ])
      }
      await replica.child.stop()
    }
    return rows
  }

  /// `ca serve`'s arguments for a new database of `postgres`, with a key-encryption key.
  private static func datastoreArguments(_ postgres: TemporaryPostgreSQL, directory: String) throws -> [String] {
    try postgres.psql("CREATE DATABASE bench")
    let kek = directory + "/kek"
    guard
      FileManager.default.createFile(
        atPath: kek, contents: Data((0..<32).map { _ in UInt8.random(in: 0...255) }),
        attributes: [.posixPermissions: 0o600])
    else { throw BenchError(.process, "cannot write \(kek)") }
    return ["--datastore", postgres.url(database: "bench"), "--key-encryption-key", kek]
  }

  /// A P-256 signature of a leaf's to-be-signed bytes and the verification of a CSR's signature
  /// (and, `checkingToken`, of a token's ES256 signature), per second of CPU time on one thread.
  private static func rawSigningRate(
    _ fleet: CABurstFleet, seconds: Double, checkingToken: Bool = false
  ) throws -> Double {
    let csr = try WorkloadCSR.make(identity: fleet.identities[0], privateKey: fleet.keys[0])
    let caKey = P256.Signing.PrivateKey()
    // A leaf's to-be-signed part is about this long, and a token's signing input about this.
    let tbs = [UInt8](repeating: 0x5A, count: 420)
    let tokenInput = [UInt8](repeating: 0x65, count: 330)
    let tokenKey = P256.Signing.PrivateKey()
    let tokenSignature = try tokenKey.signature(for: tokenInput)
    var valid = true
    let rate = try CallRate.inProcess(seconds: seconds) {
      valid = valid && csr.publicKey.isValidSignature(csr.signature, for: csr)
      if checkingToken {
        valid = valid && tokenKey.publicKey.isValidSignature(tokenSignature, for: tokenInput)
      }
      _ = try caKey.signature(for: tbs)
    }
    guard valid else { throw BenchError(.server, "the raw signature checks failed") }
    return rate
  }
}
