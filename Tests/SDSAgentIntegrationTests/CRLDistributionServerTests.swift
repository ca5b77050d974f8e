import Foundation
import Logging
import NIOCore
import SDSAgent
import SDSAgentCAServer
import SDSAgentCore
import SDSAgentTestSupport
import Testing

/// `ca serve --crl-listen` over a real socket: its CRL at the distribution point's path, DER for
/// any HTTP client (curl here) and every root's CRL in PEM for the agent's fetcher; other paths
/// and methods refused; the fetcher's failures named by their closed reason.
@Suite(.timeLimit(.minutes(1))) struct CRLDistributionServerTests {
  let root = try! CAMaterial.generateRoot(trustDomain: "cluster.local", now: Date())
  let next = try! CAMaterial.generateRoot(trustDomain: "cluster.local", now: Date(), commonName: "next root")

  func crl(_ signer: CAMaterial, number: Int) throws -> CertificateRevocationList {
    try CertificateRevocationList(
      issuer: signer.certificate, issuerKey: signer.privateKey, number: number, entries: [], thisUpdate: Date(),
      nextUpdate: Date() + 3600)
  }

  /// Runs a server on a free loopback port while `body` runs with its port.
  func serving(_ body: (Int) async throws -> Void) async throws {
    let signing = try self.crl(self.root, number: 7)
    let other = try self.crl(self.next, number: 7)
    let server = CRLDistributionServer(
      host: "127.0.0.1", port: 0, path: "/crl/ca.crl", lists: { ([signing, other], signing) },
      logger: Logger(label: "test"))
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask {
        do {
          try await server.run()
        } catch is CancellationError {
          // The test is over.
        }
      }
      var addresses = server.boundAddresses.makeAsyncIterator()
      let port = try #require(await addresses.next()?.port)
      try await body(port)
      group.cancelAll()
    }
  }

  func curl(_ arguments: [String]) throws -> (status: Int32, output: Data) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["curl", "-s", "--max-time", "10"] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, output)
  }

  /// How a fetch failed; `nil` when it answered.
  func failure(of point: CRLDistributionPoint, with fetcher: some CRLFetcher) async -> CRLFetchFailure? {
    do throws(CRLFetchFailure) {
      _ = try await fetcher.fetch(point)
      return nil
    } catch {
      return error
    }
  }

  @Test func anyHTTPClientGetsTheSigningRootsCRLInDER() async throws {
    try await self.serving { port in
      let started = ContinuousClock.now
      let answer = try self.curl(["http://127.0.0.1:\(port)/crl/ca.crl"])
      print("CRL over HTTP: \(ContinuousClock.now - started) for a GET with curl")
      #expect(answer.status == 0)
      let crl = try CertificateRevocationList(derEncoded: Array(answer.output))
      #expect(crl.number == 7 && crl.isSigned(by: self.root.certificate))
      let code = try self.curl(["-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(port)/other"])
      #expect(String(decoding: code.output, as: UTF8.self) == "404")
      let post = try self.curl(
        ["-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "http://127.0.0.1:\(port)/crl/ca.crl"])
      #expect(String(decoding: post.output, as: UTF8.self) == "405")
    }
  }

  @Test func theAgentsFetcherGetsEveryRootsCRL() async throws {
    try await self.serving { port in
      let fetcher = HTTPCRLFetcher(clock: ContinuousClock())
      let point = try #require(CRLDistributionPoint(url: "http://127.0.0.1:\(port)/crl/ca.crl"))
      let started = ContinuousClock.now
      let lists = try CertificateRevocationList.read(try await fetcher.fetch(point))
      print("CRL over HTTP: \(ContinuousClock.now - started) for the agent's fetch")
      #expect(lists.count == 2)
      #expect(lists.contains { $0.isSigned(by: self.root.certificate) })
      #expect(lists.contains { $0.isSigned(by: self.next.certificate) })
      let missing = try #require(CRLDistributionPoint(url: "http://127.0.0.1:\(port)/nothing"))
      #expect(await self.failure(of: missing, with: fetcher)?.code == .httpStatus)
    }
  }

  @Test func aClosedPortIsUnreachable() async throws {
    let fetcher = HTTPCRLFetcher(clock: ContinuousClock(), timeLimit: .seconds(5))
    let closed = try #require(CRLDistributionPoint(url: "http://127.0.0.1:1/crl"))
    #expect(await self.failure(of: closed, with: fetcher)?.code == .unreachable)
  }
}
