import Foundation

/// The revoked certificates of one CA and the number of the next CRL, as a value: every change
/// goes through `revoke`, which decides from the issuance record what a request means.
package struct Revocations: Sendable, Codable, Equatable {
  package private(set) var entries: [RevokedCertificate]
  /// The number of the last CRL signed; the next one is larger (RFC 5280 §5.2.3).
  package private(set) var crlNumber: Int

  package init(entries: [RevokedCertificate] = [], crlNumber: Int = 0) {
    self.entries = entries
    self.crlNumber = crlNumber
  }

  package enum Request: Sendable, Equatable {
    case serial(CertificateSerial)
    case identity(SPIFFEID)
  }

  package enum Outcome: Sendable, Equatable {
    /// These serials are now revoked (those already revoked are not repeated).
    case revoked([RevokedCertificate])
    /// The CA never signed this serial, or forgot it (expired or evicted from its record).
    case unknownSerial(CertificateSerial)
    /// The certificate expired already: nothing to revoke.
    case expired(CertificateSerial, notAfter: Date)
    /// The identity holds no unexpired certificate of this CA.
    case noCertificates(SPIFFEID)
    /// Every matching certificate was revoked before.
    case alreadyRevoked([CertificateSerial])
  }

  package func isRevoked(_ serial: CertificateSerial) -> Bool {
    self.entries.contains { $0.serial == serial }
  }

  /// Revokes what `request` names, if the record knows it and it has not expired.
  package mutating func revoke(
    _ request: Request,
    reason: RevocationReason,
    issued: IssuedCertificates,
    at now: Date
  ) -> Outcome {
    let targets: [IssuedCertificate]
    switch request {
    case .serial(let serial):
      guard let row = issued.row(serial: serial) else { return .unknownSerial(serial) }
      guard row.notAfter > now else { return .expired(serial, notAfter: row.notAfter) }
      targets = [row]
    case .identity(let identity):
      targets = issued.rows(of: identity, at: now)
      guard !targets.isEmpty else { return .noCertificates(identity) }
    }
    let fresh = targets.filter { !self.isRevoked($0.serial) }
    guard !fresh.isEmpty else { return .alreadyRevoked(targets.map(\.serial)) }
    let added = fresh.map {
      RevokedCertificate(serial: $0.serial, revokedAt: now, reason: reason, notAfter: $0.notAfter)
    }
    self.entries += added
    return .revoked(added)
  }

  /// Drops entries whose certificate expired; true when something was dropped.
  @discardableResult
  package mutating func prune(at now: Date) -> Bool {
    let before = self.entries.count
    self.entries.removeAll { $0.notAfter <= now }
    return self.entries.count != before
  }

  /// Takes the number for the next CRL.
  package mutating func nextCRLNumber() -> Int {
    self.crlNumber += 1
    return self.crlNumber
  }
}
