import Foundation
import SDSAgentCore

/// How `ca ledger` prints rows and verdicts: one line a row, or JSON for scripts.
package enum LedgerReport {
  package static func lines(_ rows: [LedgerEntry]) -> String {
    rows.map { row in
      switch row.kind {
      case .checkpoint:
        return "\(row.sequence) checkpoint pruned-through=\(row.prunedThrough ?? 0) replica=\(row.replica) "
          + "at=\(self.time(row.notBefore))\n"
      case .issuance:
        let via = row.impersonatedBy.map { " via=\($0)" } ?? ""
        return "\(row.sequence) serial=\(row.serial) identity=\(row.spiffeID) caller=\(row.caller)\(via) "
          + "replica=\(row.replica) not-before=\(self.time(row.notBefore)) not-after=\(self.time(row.notAfter))\n"
      }
    }.joined()
  }

  package static func json(_ rows: [LedgerEntry]) -> String {
    self.encode(Rows(rows: rows.map(Row.init))) + "\n"
  }

  package static func verified(count: Int, head: LedgerEntry?, json: Bool) -> String {
    let hash = head.map { self.hex($0.hash) } ?? ""
    if json {
      return self.encode(Verified(rows: count, headSequence: head?.sequence ?? 0, headHash: hash))
    }
    return "ledger verified: \(count) rows" + (head.map { ", head \($0.sequence) \(hash)" } ?? "")
  }

  package static func broken(_ failure: LedgerBreak, json: Bool) -> String {
    if json {
      return self.encode(Broken(sequence: failure.sequence, reason: failure.code.rawValue, message: failure.message))
    }
    return "ledger does not verify: \(failure.message)"
  }

  private static func encode(_ value: some Encodable) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    guard let data = try? encoder.encode(value) else { return "{}" }
    return String(decoding: data, as: UTF8.self)
  }

  private struct Rows: Encodable {
    let rows: [Row]
  }

  /// A row as `--json` prints it: an issuance's fields or a checkpoint's, never both.
  private struct Row: Encodable {
    let sequence: Int64
    let kind: String
    let replica: String
    let previousHash: String
    let hash: String
    var serial: String?
    var spiffeID: String?
    var caller: String?
    var impersonatedBy: String?
    var notBefore: String?
    var notAfter: String?
    var prunedThrough: Int64?
    var prunedHash: String?
    var at: String?

    enum CodingKeys: String, CodingKey {
      case sequence, kind, replica, hash, serial, caller, at
      case previousHash = "previous_hash"
      case spiffeID = "spiffe_id"
      case impersonatedBy = "impersonated_by"
      case notBefore = "not_before"
      case notAfter = "not_after"
      case prunedThrough = "pruned_through"
      case prunedHash = "pruned_hash"
    }

    init(_ row: LedgerEntry) {
      self.sequence = row.sequence
      self.kind = row.kind.rawValue
      self.replica = row.replica
      self.previousHash = LedgerReport.hex(row.previousHash)
      self.hash = LedgerReport.hex(row.hash)
      switch row.kind {
      case .issuance:
        self.serial = row.serial
        self.spiffeID = row.spiffeID
        self.caller = row.caller
        self.impersonatedBy = row.impersonatedBy
        self.notBefore = LedgerReport.time(row.notBefore)
        self.notAfter = LedgerReport.time(row.notAfter)
      case .checkpoint:
        self.prunedThrough = row.prunedThrough
        self.prunedHash = row.prunedHash.map(LedgerReport.hex)
        self.at = LedgerReport.time(row.notBefore)
      }
    }
  }

  private struct Verified: Encodable {
    let verified = true
    let rows: Int
    let headSequence: Int64
    let headHash: String

    enum CodingKeys: String, CodingKey {
      case verified, rows
      case headSequence = "head_sequence"
      case headHash = "head_hash"
    }
  }

  private struct Broken: Encodable {
    let verified = false
    let sequence: Int64
    let reason: String
    let message: String
  }

  private static func hex(_ bytes: [UInt8]) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
  }

  private static func time(_ date: Date) -> String {
    date.formatted(.iso8601)
  }
}

/// `--since`: an RFC 3339 time, or a duration before now.
package enum LedgerSince {
  package static func parse(_ text: String, now: Date) -> Date? {
    if let date = try? Date(text, strategy: .iso8601) { return date }
    guard let duration = DurationParser.parse(text, in: .seconds(1) ... .seconds(10 * 365 * 86400)) else { return nil }
    return now.addingTimeInterval(-Double(duration.components.seconds))
  }
}
