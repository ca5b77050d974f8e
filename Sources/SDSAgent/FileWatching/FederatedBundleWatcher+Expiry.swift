import Foundation
import Logging
import SDSAgentCore

/// A federated root leaves its domain's bundle when it expires, though its file is unchanged:
/// each domain's first expiry is a `.federatedExpiry` change of the trust schedule, made on the
/// identity supervisor's timer. The bundle left is what reading the file then would serve: the
/// roots still valid, or, when none is, nothing (the domain, and its JWT keys, are no longer
/// served, counted and logged as a file whose roots all expired).
extension FederatedBundleWatcher {
  /// Schedules each served domain's next root expiry, in place of the one scheduled before. Called
  /// under the entries' lock, so a deadline of an older read never replaces a newer one's.
  func scheduleExpiries(of entries: [Entry]) {
    for entry in entries {
      let domain = entry.source.trustDomain
      guard let at = entry.bundle.flatMap({ BundleDocument.firstExpiry(of: $0.roots) }) else {
        self.table.trustSchedule.cancel(.federatedExpiry(domain))
        continue
      }
      self.table.trustSchedule.schedule(.federatedExpiry(domain), at: at) { [weak self] now in
        self?.expire(domain, now: now)
        return nil
      }
    }
  }

  /// Drops `domain`'s roots that have expired at `now` and serves what is left.
  func expire(_ domain: TrustDomainName, now: Date) {
    let outcome = self.entries.withLock { entries -> (entry: Entry, expired: Int, failure: BundleFile.Failure?)? in
      guard let index = entries.firstIndex(where: { $0.source.trustDomain == domain }),
        let roots = entries[index].bundle?.roots
      else { return nil }
      let current = BundleDocument.unexpired(roots, at: now)
      var failure: BundleFile.Failure?
      if current.isEmpty {
        let error = BundleDocument.allExpired(roots, now: now)
        failure = BundleFile.Failure(error)
        entries[index].bundle = nil
        entries[index].jwtKeys = []
        entries[index].lastError = "\(error.reason.rawValue): \(error.message)"
      } else if current.count < roots.count {
        entries[index].bundle = TrustBundle(roots: current)
      }
      self.scheduleExpiries(of: [entries[index]])
      return (entries[index], roots.count - current.count, failure)
    }
    guard let outcome, outcome.expired > 0 else { return }
    if let failure = outcome.failure {
      self.report([(outcome.entry, failure)])
    } else {
      self.logger.notice(
        "a federated root expired; it left the trust bundle",
        metadata: [
          "trust_domain": "\(domain)", "file": "\(outcome.entry.source.path)", "expired": "\(outcome.expired)",
          "roots": "\(outcome.entry.bundle?.roots.count ?? 0)",
        ])
    }
    do {
      try self.publish()
    } catch {
      self.logger.error("cannot serve the federated trust bundles", metadata: ["error": "\(error)"])
    }
  }
}
