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
    self.encode(["rows": rows.map(self.object)]) + "\n"
  }

  package static func verified(count: Int, head: LedgerEntry?, json: Bool) -> String {
    let hash = head.map { self.hex($0.hash) } ?? ""
    if json {
      return self.encode(["verified": true, "rows": count, "head_sequence": head?.sequence ?? 0, "head_hash": hash])
    }
    return "ledger verified: \(count) rows" + (head.map { ", head \($0.sequence) \(hash)" } ?? "")
  }

  package static func broken(_ failure: LedgerBreak, json: Bool) -> String {
    if json {
      return self.encode([
        "verified": false, "sequence": failure.sequence, "reason": failure.code.rawValue, "message": failure.message,
      ])
    }
    return "ledger does not verify: \(failure.message)"
  }

  private static func object(_ row: LedgerEntry) -> [String: Any] {
    var object: [String: Any] = [
      "sequence": row.sequence, "kind": row.kind.rawValue, "replica": row.replica,
      "previous_hash": self.hex(row.previousHash), "hash": self.hex(row.hash),
    ]
    switch row.kind {
    case .issuance:
      object["serial"] = row.serial
      object["spiffe_id"] = row.spiffeID
      object["caller"] = row.caller
      object["impersonated_by"] = row.impersonatedBy
      object["not_before"] = self.time(row.notBefore)
      object["not_after"] = self.time(row.notAfter)
    case .checkpoint:
      object["pruned_through"] = row.prunedThrough
      object["pruned_hash"] = row.prunedHash.map(self.hex)
      object["at"] = self.time(row.notBefore)
    }
    return object
  }

  private static func encode(_ value: [String: Any]) -> String {
    guard let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys]) else { return "{}" }
    return String(decoding: data, as: UTF8.self)
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
