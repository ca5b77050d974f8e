import Crypto
import Foundation
import SDSAgentCore
import X509

extension Bench {
  func issuance(keyTypes: [WorkloadKeyType] = WorkloadKeyType.allCases) async throws -> [[String]] {
    let identity = try SPIFFEID(parsing: "spiffe://cluster.local/ns/bench/sa/bench")
    let material = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: Date())
    let ca = LocalCA(material: material)
    let caKey = P256.Signing.PrivateKey()
    // A leaf's to-be-signed part is about this long.
    let tbs = [UInt8](repeating: 0x5A, count: 420)
    var rows: [[String]] = []
    for keyType in keyTypes {
      let (_, issuedTime) = try self.repeatFor(self.measureSeconds) {
        _ = try ca.certify(identity: identity, privateKey: try keyType.generate(), ttl: .seconds(3600), now: Date())
      }
      let (_, rawTime) = try self.repeatFor(self.measureSeconds) {
        _ = try keyType.generate()
        _ = try caKey.signature(for: tbs)
      }
      let perIssue = issuedTime
      let perRaw = rawTime
      let openssl = Self.opensslSignRate(keyType == .ecdsaP256 ? "ecdsap256" : "rsa2048")
      rows.append([
        keyType.rawValue, String(format: "%.0f", 1 / perIssue.seconds), Self.ms(perIssue),
        Self.ms(perRaw), String(format: "%.2f×", perIssue.seconds / perRaw.seconds), openssl,
      ])
    }
    return rows
  }

  /// Runs `body` repeatedly for about `seconds`; returns the count and the mean time per run.
  private func repeatFor(_ seconds: Double, _ body: () throws -> Void) throws -> (Int, Duration) {
    let started = ContinuousClock.now
    var count = 0
    while (ContinuousClock.now - started).seconds < seconds || count < 3 {
      try body()
      count += 1
    }
    let elapsed = ContinuousClock.now - started
    return (count, elapsed / count)
  }

  static func opensslSignRate(_ algorithm: String) -> String {
    let process = Process()
    // `openssl speed` times itself with SIGALRM, which the concurrency pool's threads block and
    // a spawned child inherits blocked: unblock it before exec, or the run never ends.
    process.executableURL = URL(fileURLWithPath: "/usr/bin/perl")
    process.arguments = [
      "-MPOSIX", "-e", "sigprocmask(SIG_UNBLOCK, POSIX::SigSet->new(SIGALRM)); exec @ARGV or die",
      "openssl", "speed", "-seconds", "1", algorithm,
    ]
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = FileHandle.nullDevice
    guard (try? process.run()) != nil else { return "openssl not found" }
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    // The last line holds the figures: "... sign verify sign/s verify/s" (ecdsa) or
    // "rsa 2048 bits 0.000xs 0.0000xs sign/s verify/s" (rsa).
    guard
      let line = output.split(separator: "\n").last(where: {
        $0.contains(algorithm == "rsa2048" ? "rsa 2048" : "256 bits")
      })
    else { return "?" }
    let numbers = line.split(separator: " ").compactMap { Double($0) }
    guard numbers.count >= 2 else { return "?" }
    return String(format: "%.0f", numbers[numbers.count - 2])
  }
}
