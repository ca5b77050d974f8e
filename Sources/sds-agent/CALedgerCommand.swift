import ArgumentParser
import Foundation
import Logging
import SDSAgent
import SDSAgentCAServer
import SDSAgentCore

struct CALedgerCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "ledger",
    abstract: "List the certificates `ca serve` replicas signed (the issuance ledger in --datastore), or verify it.",
    discussion: """
      Every certificate a replica signs is a row written before the answer leaves: serial, SPIFFE ID, \
      caller, the node that asked on a workload's behalf, replica, validity. Each row's hash covers the \
      previous row's, so --verify names the first row changed, reordered or deleted since it was written \
      (and exits 1). Rows cut from the end leave a shorter chain that verifies: keep the head it prints.
      """
  )

  @Option(help: "PostgreSQL URL of the datastore (postgresql://USER@HOST:PORT/DB?sslmode=…).")
  var datastore: String

  @Option(help: "File holding the datastore password (default: the URL's, or PGPASSWORD).")
  var datastorePasswordFile: String?

  @Option(help: "Only this SPIFFE ID's certificates.")
  var identity: String?

  @Option(help: "Only certificates valid from this time on: RFC 3339 (2026-12-06T10:00:00Z) or a duration ago (24h).")
  var since: String?

  @Flag(help: "One JSON document instead of lines.")
  var json = false

  @Flag(help: "Walk the whole chain and name the first row that does not verify (exit 1).")
  var verify = false

  func validate() throws {
    if self.verify, self.identity != nil || self.since != nil {
      throw ValidationError("--verify walks the whole ledger: drop --identity and --since")
    }
    if let since, LedgerSince.parse(since, now: Date()) == nil {
      throw ValidationError("--since \(BoundedText(since)): expected an RFC 3339 time or a duration such as 24h")
    }
  }

  func run() async throws {
    let logger = Logger(label: "sds-agent.ca.ledger")
    let address = try DatastoreAddress(
      parsing: self.datastore, passwordFile: self.datastorePasswordFile,
      environment: ProcessInfo.processInfo.environment)
    let rows = try await LedgerReader(address: address, logger: logger).rows(
      identity: self.identity, since: self.since.flatMap { LedgerSince.parse($0, now: Date()) })
    if self.verify {
      switch LedgerChain.verify(rows) {
      case .verified(let count, let head):
        print(LedgerReport.verified(count: count, head: head, json: self.json))
      case .broken(let failure):
        print(LedgerReport.broken(failure, json: self.json))
        throw ExitCode(1)
      }
      return
    }
    print(self.json ? LedgerReport.json(rows) : LedgerReport.lines(rows), terminator: "")
  }
}
