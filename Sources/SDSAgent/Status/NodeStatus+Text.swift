import Foundation

extension NodeStatus {
  /// The status as a person reads it: a table of identities, the trust bundle, the Envoys;
  /// every field escaped (`escaped()`), whatever the endpoint answered.
  package func text(now: Date) -> String {
    let status = self.escaped()
    return status.rendered(now: now)
  }

  private func rendered(now: Date) -> String {
    var lines = ["certificates from \(self.certificateAuthority)", ""]
    lines += Self.table(
      header: ["IDENTITY", "PHASE", "SERIAL", "EXPIRES", "NEXT ROTATION", "STREAMS"],
      rows: self.identities.map { row in
        let next =
          row.nextRotation.map { Self.relative($0, now: now) }
          ?? row.retryAt.map { "retry " + Self.relative($0, now: now) } ?? "-"
        return [
          row.identity + (row.pinned ? " (agent)" : ""),
          row.healthy ? row.phase : "\(row.phase) !",
          row.serial.map { String($0.prefix(16)) } ?? "-",
          row.notAfter.map { Self.relative($0, now: now) } ?? "-",
          next,
          "\(row.streams)",
        ]
      })
    for row in self.identities {
      if let error = row.lastError { lines.append("  \(row.identity): last error: \(error)") }
    }
    lines += ["", "trust bundle: \(self.trustBundle.count) root(s)"]
    lines += self.trustBundle.map {
      "  \($0.subject) serial \($0.serial.prefix(16)) expires \(Self.relative($0.notAfter, now: now))"
    }
    lines.append(
      self.revocationLists.isEmpty ? "revocation lists: none served" : "revocation lists: \(self.revocationLists.count)"
    )
    lines += self.revocationLists.map {
      "  \($0.issuer) (root \($0.issuerRoot.map { String($0.prefix(16)) } ?? "-")) number \($0.number), "
        + "\($0.entries) revoked, next update \(Self.relative($0.nextUpdate, now: now))"
    }
    let envoyStreams = self.streams.filter { !$0.isWorkloadAPI }
    lines += [
      "", "connected Envoys: \(Set(envoyStreams.compactMap(\.nodeID)).count) node(s), \(envoyStreams.count) stream(s)",
    ]
    if !envoyStreams.isEmpty {
      lines += Self.table(
        header: ["NODE", "IDENTITY", "RESOURCES", "ACKED", "LAST NACK"],
        rows: envoyStreams.map { stream in
          [
            stream.nodeID ?? "-", stream.identity ?? "-", stream.resources.joined(separator: ","),
            stream.lastAckedVersion ?? "-", stream.lastNackMessage.map { String($0.prefix(60)) } ?? "-",
          ]
        })
    }
    lines += self.workloadAPILines()
    lines += ["", self.isHealthy ? "healthy" : "UNHEALTHY: an identity has no valid certificate"]
    return lines.joined(separator: "\n") + "\n"
  }

  /// `in 11h 59m` or `3m 2s ago`.
  static func relative(_ date: Date, now: Date) -> String {
    let seconds = Int(date.timeIntervalSince(now).rounded())
    let magnitude = abs(seconds)
    let text =
      magnitude >= 172_800
      ? "\(magnitude / 86400)d \(magnitude % 86400 / 3600)h"
      : magnitude >= 3600
        ? "\(magnitude / 3600)h \(magnitude % 3600 / 60)m"
        : magnitude >= 60 ? "\(magnitude / 60)m \(magnitude % 60)s" : "\(magnitude)s"
    return seconds >= 0 ? "in \(text)" : "\(text) ago"
  }

  static func table(header: [String], rows: [[String]]) -> [String] {
    let all = [header] + rows
    let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
    return all.map { row in
      row.enumerated().map { index, cell in
        index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
      }.joined(separator: "  ")
    }
  }
}
