import Foundation

/// The record of unexpired certificates a CA signed, bounded: expired rows are dropped, and past
/// `capacity` the rows that expire first make room (counted in `evicted`).
package struct IssuedCertificates: Sendable {
  package static let defaultCapacity = 100_000

  package let capacity: Int
  private var bySerial: [CertificateSerial: IssuedCertificate] = [:]
  /// Rows dropped while still unexpired because the record was full.
  package private(set) var evicted = 0

  package init(capacity: Int = Self.defaultCapacity, rows: [IssuedCertificate] = []) {
    self.capacity = max(1, capacity)
    for row in rows { self.bySerial[row.serial] = row }
  }

  package var count: Int { self.bySerial.count }
  package var rows: [IssuedCertificate] { self.bySerial.values.sorted { $0.serial < $1.serial } }

  package func row(serial: CertificateSerial) -> IssuedCertificate? { self.bySerial[serial] }

  /// Every unexpired row of `identity`.
  package func rows(of identity: SPIFFEID, at now: Date) -> [IssuedCertificate] {
    self.bySerial.values.filter { $0.identity == identity && $0.notAfter > now }.sorted { $0.serial < $1.serial }
  }

  /// Adds a row, dropping expired ones and, if still full, the ones that expire first.
  package mutating func record(_ row: IssuedCertificate, at now: Date) {
    self.bySerial[row.serial] = row
    guard self.bySerial.count > self.capacity else { return }
    self.prune(at: now)
    let excess = self.bySerial.count - self.capacity
    guard excess > 0 else { return }
    for victim in self.bySerial.values.sorted(by: { $0.notAfter < $1.notAfter }).prefix(excess) {
      self.bySerial[victim.serial] = nil
    }
    self.evicted += excess
  }

  /// Drops rows whose certificate expired; returns how many.
  @discardableResult
  package mutating func prune(at now: Date) -> Int {
    let before = self.bySerial.count
    self.bySerial = self.bySerial.filter { $0.value.notAfter > now }
    return before - self.bySerial.count
  }
}
