import Foundation
import Logging
import SDSAgent
import SDSAgentCore
import X509

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// A renewal storm: `agents` simulated node agents, connected and holding a certificate, renew
/// at once against two `ca serve` replicas that share one CA (the same `--ca-cert`/`--ca-key`). Each simulated agent is the
/// agent's own `IstioCAClient` with both addresses (its own connections, its turn taking and
/// failover) and retries as `IdentityLifecycle` does: after a CA's retry hint with jitter on
/// top, else after its backoff.
extension Bench {
  static let caBurstHeader = [
    "admission", "agents", "run", "p50 to a certificate", "p99", "max", "refusals (calls)", "other failures",
    "replica CPU (a + b)", "bench client CPU",
  ]

  func caBurst(agents: Int, runs: Int) async throws -> [[String]] {
    let directory = try AgentProcess.temporaryDirectory()
    let fleet = try await CABurstFleet(directory: directory, agents: agents)
    var rows: [[String]] = []
    let modes: [(name: String, arguments: [String])] = [
      ("off", ["--max-inflight", "0"]), ("on, default cap (\(4 * ProcessInfo.processInfo.activeProcessorCount))", []),
      ("on, --max-inflight 1", ["--max-inflight", "1"]),
    ]
    for (name, arguments) in modes {
      for run in 1...runs {
        let replicas = try await fleet.startReplicas(self.agentBinary, arguments: arguments, in: self.children)
        let outcome = try await fleet.burst(replicas: replicas)
        for replica in replicas { await replica.child.stop() }
        let times = outcome.times.sorted()
        rows.append([
          name, "\(agents)", "\(run)", Self.ms(Self.percentile(times, 0.5)), Self.ms(Self.percentile(times, 0.99)),
          Self.ms(times.last ?? .zero), "\(outcome.refusals)", "\(outcome.failures)",
          outcome.replicaCPU.map(Self.ms).joined(separator: " + "), Self.ms(outcome.clientCPU),
        ])
        FileHandle.standardError.write(Data("ca-burst: admission \(name), run \(run) done\n".utf8))
      }
    }
    return rows
  }
}

/// The CA, the tokens and the keys of one storm, made once for every run.
struct CABurstFleet {
  let directory: String
  let tokens: [String]
  let keys: [WorkloadPrivateKey]
  let identities: [SPIFFEID]
  let jwtKeysFile: String

  init(directory: String, agents: Int) async throws {
    self.directory = directory
    let material = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Date())
    try (try material.certificate.pemString() + "\n").write(
      toFile: directory + "/root.pem", atomically: true, encoding: .utf8)
    let keyPath = directory + "/root-key.pem"
    let keyPEM = try material.privateKey.serializeAsPEM().pemString + "\n"
    guard
      FileManager.default.createFile(
        atPath: keyPath, contents: Data(keyPEM.utf8), attributes: [.posixPermissions: 0o600])
    else { throw BenchError(.process, "cannot write \(keyPath)") }
    let issuer = try await BenchTokenIssuer(directory: directory)
    self.jwtKeysFile = issuer.keysFile
    var tokens: [String] = []
    var identities: [SPIFFEID] = []
    for index in 0..<agents {
      tokens.append(try await issuer.token(subject: "system:serviceaccount:bench:node-\(index)"))
      identities.append(try SPIFFEID(parsing: "spiffe://cluster.local/ns/bench/sa/node-\(index)"))
    }
    self.tokens = tokens
    self.identities = identities
    self.keys = try (0..<agents).map { _ in try WorkloadKeyType.ecdsaP256.generate() }
  }

  struct Replica {
    let child: ChildProcess
    let address: CAAddress
  }

  func startReplicas(_ binary: String, arguments: [String], in children: ChildProcesses) async throws -> [Replica] {
    var replicas: [Replica] = []
    for name in ["a", "b"] {
      replicas.append(try self.launchReplica(binary, name: name, arguments: arguments, in: children))
    }
    for replica in replicas {
      try await self.waitUntilSigning(replica)
    }
    return replicas
  }

  /// One replica of the CA, once it signs.
  func startReplica(
    _ binary: String, name: String, arguments: [String], in children: ChildProcesses
  ) async throws -> Replica {
    let replica = try self.launchReplica(binary, name: name, arguments: arguments, in: children)
    try await self.waitUntilSigning(replica)
    return replica
  }

  private func launchReplica(
    _ binary: String, name: String, arguments: [String], in children: ChildProcesses
  ) throws -> Replica {
    let state = self.directory + "/replica-\(name)-\(UInt32.random(in: 0...UInt32.max))"
    try FileManager.default.createDirectory(
      atPath: state, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    let port = try Self.freePort()
    let child = try ChildProcess(
      binary,
      [
        "ca", "serve", "--listen", "127.0.0.1:\(port)", "--state-dir", state, "--jwt-keys", self.jwtKeysFile,
        "--ca-cert", self.directory + "/root.pem", "--ca-key", self.directory + "/root-key.pem",
        "--log-level", "error",
      ] + arguments, in: children)
    return Replica(child: child, address: CAAddress(host: "127.0.0.1", port: port))
  }

  /// One call through the real client; the replica signs once it answers.
  private func waitUntilSigning(_ replica: Replica) async throws {
    let started = ContinuousClock.now
    while ContinuousClock.now - started < .seconds(30) {
      guard replica.child.process.isRunning else {
        throw BenchError(.process, "ca serve exited with status \(replica.child.process.terminationStatus)")
      }
      let agent = try CABurstAgent(index: 0, fleet: self, addresses: [replica.address])
      if await agent.renewOnce() { return }
      await Task.yield()
    }
    throw BenchError(.process, "ca serve at \(replica.address) did not sign within 30 s")
  }

  struct Outcome {
    var times: [Duration] = []
    var refusals = 0
    var failures = 0
    var replicaCPU: [Duration] = []
    var clientCPU = Duration.zero
  }

  /// Every agent connects and gets a first certificate (not timed), then all renew at once:
  /// each one's time to a certificate, and the CPU the replicas and the client spent meanwhile.
  func burst(replicas: [Replica]) async throws -> Outcome {
    let addresses = replicas.map(\.address)
    let agents = try self.tokens.indices.map { try CABurstAgent(index: $0, fleet: self, addresses: addresses) }
    return await withTaskGroup(of: Void.self) { connections in
      for agent in agents {
        connections.addTask { try? await agent.client.run() }
      }
      defer { connections.cancelAll() }
      _ = await Self.renewAll(agents)
      let cpuBefore = replicas.map(\.child.processorTime)
      let clientBefore = ProcessorTime.used()
      var outcome = await Self.renewAll(agents)
      outcome.replicaCPU = zip(replicas, cpuBefore).map { $0.child.processorTime - $1 }
      outcome.clientCPU = ProcessorTime.used() - clientBefore
      return outcome
    }
  }

  private static func renewAll(_ agents: [CABurstAgent]) async -> Outcome {
    let started = ContinuousClock.now
    return await withTaskGroup(of: (Duration, Int, Int).self) { group in
      for agent in agents {
        group.addTask { await agent.renew(since: started) }
      }
      var outcome = Outcome()
      for await (time, refusals, failures) in group {
        outcome.times.append(time)
        outcome.refusals += refusals
        outcome.failures += failures
      }
      return outcome
    }
  }

  static func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
        bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
      }
    }
    guard bound else { throw BenchError(.process, "no free port") }
    return Int(UInt16(bigEndian: address.sin_port))
  }
}
