import Foundation
import X509

/// One CA's revocation state as a value: what it signed, what it revoked, and the CRL each of its
/// issuing certificates last signed. Every change goes through a transition; the caller persists
/// `issued` rows and `revocations` before it acts on what a transition returns.
///
/// Each issuer's list names every revoked serial, not only those it signed: serials are 20 random
/// bytes, so an entry cannot name a sibling's certificate, and a leaf signed by a root that is being
/// retired stays revoked whichever of the CA's roots Envoy builds its chain to.
package struct RevocationLedger: Sendable {
  package private(set) var issued: IssuedCertificates
  package private(set) var revocations: Revocations
  /// The list each issuer signed last (roots of one CA may share a subject, not a certificate).
  private var lists: [Certificate: CertificateRevocationList] = [:]
  /// Issuers whose list predates the last change of `revocations`.
  private var stale: Set<Certificate> = []
  package let schedule: CRLSchedule

  package init(
    issued: IssuedCertificates = IssuedCertificates(), revocations: Revocations = Revocations(), schedule: CRLSchedule
  ) {
    self.issued = issued
    self.revocations = revocations
    self.schedule = schedule
  }

  /// Remembers a certificate the CA signed.
  package mutating func record(_ row: IssuedCertificate, at now: Date) {
    self.issued.record(row, at: now)
  }

  /// Takes the revocations another writer recorded (a `ca serve` replica sharing its datastore):
  /// every issuer's list is signed again if they differ; CRL numbers keep increasing here.
  package mutating func adopt(_ shared: Revocations) {
    guard shared.entries != self.revocations.entries else { return }
    self.revocations = Revocations(
      entries: shared.entries, crlNumber: max(shared.crlNumber, self.revocations.crlNumber))
    self.stale = Set(self.lists.keys)
  }

  /// Revokes what `request` names; on `.revoked`, every issuer's list is signed again.
  package mutating func revoke(
    _ request: Revocations.Request, reason: RevocationReason, at now: Date
  ) -> Revocations.Outcome {
    let outcome = self.revocations.revoke(request, reason: reason, issued: self.issued, at: now)
    if case .revoked = outcome { self.stale = Set(self.lists.keys) }
    return outcome
  }

  /// Forgets expired certificates and the entries of expired revoked ones (their lists are signed
  /// again); true when a revocation entry was dropped.
  @discardableResult
  package mutating func prune(at now: Date) -> Bool {
    self.issued.prune(at: now)
    guard self.revocations.prune(at: now) else { return false }
    self.stale = Set(self.lists.keys)
    return true
  }

  /// The list of each issuer, signed now where it is due (none yet, the revocations changed, or
  /// past half its validity), and when the next one is due. Issuers no longer given are forgotten.
  /// Each signing takes a new CRL number, so `revocations` must be persisted again after one.
  package mutating func lists(
    of issuers: [CRLIssuer], at now: Date
  ) throws(CRLError) -> (lists: [CertificateRevocationList], nextSigning: Date) {
    let keys = issuers.map(\.certificate)
    self.lists = self.lists.filter { keys.contains($0.key) }
    self.stale.formIntersection(keys)
    var signed: [CertificateRevocationList] = []
    var next = Date.distantFuture
    for (issuer, key) in zip(issuers, keys) {
      let held = self.lists[key]
      if let held,
        case .sign(let due) = self.schedule.decision(
          held: held, revocationsChanged: self.stale.contains(key), now: now)
      {
        signed.append(held)
        next = min(next, due)
        continue
      }
      let window = self.schedule.window(now: now)
      let list = try CertificateRevocationList(
        issuer: issuer.certificate, issuerKey: issuer.key, number: self.revocations.nextCRLNumber(),
        entries: self.revocations.entries, thisUpdate: window.thisUpdate, nextUpdate: window.nextUpdate)
      self.lists[key] = list
      self.stale.remove(key)
      if case .sign(let due) = self.schedule.decision(held: list, revocationsChanged: false, now: now) {
        next = min(next, due)
      }
      signed.append(list)
    }
    return (signed, next)
  }
}
