import Foundation
import X509

/// The own trust domain's bundle in fetch mode, as a value: the roots of the CA's latest
/// response, the roots of the `ca-root` file (how a fleet distributes a new root ahead of the
/// CA's switch), and roots the CA stopped sending, kept until the leaves chained to them have
/// expired.
package struct FetchedTrust: Sendable, Equatable {
  package private(set) var responseRoots: [Certificate] = []
  package private(set) var fileRoots: [Certificate] = []
  /// Roots the CA no longer sends, and until when they stay trusted.
  package private(set) var retained: [Certificate: Date] = [:]

  package init(fileRoots: [Certificate] = []) {
    self.fileRoots = fileRoots
  }

  /// Every root trusted now.
  package var bundle: TrustBundle {
    TrustBundle(roots: self.responseRoots + self.fileRoots + self.retained.keys)
  }

  /// Takes the roots of a CA response. Roots of the previous response that this one lacks stay
  /// trusted until `now + retention`: a leaf chained to them, here or at a peer, lives at most
  /// that long.
  package mutating func observe(response roots: [Certificate], now: Date, retention: Duration) {
    let until = now.addingTimeInterval(retention.seconds)
    for dropped in self.responseRoots where !roots.contains(dropped) {
      self.retained[dropped] = max(self.retained[dropped] ?? until, until)
    }
    for root in roots {
      self.retained[root] = nil
    }
    self.responseRoots = roots
  }

  /// Takes the roots of the `ca-root` file.
  package mutating func setFileRoots(_ roots: [Certificate]) {
    self.fileRoots = roots
  }

  /// Drops retained roots whose time is over.
  package mutating func prune(now: Date) {
    self.retained = self.retained.filter { $0.value > now }
  }

  /// When the next retained root is dropped.
  package var nextExpiry: Date? { self.retained.values.min() }

  /// Drops the `ca-root` file's roots that have expired at `now`, as reading the file then would;
  /// returns the roots dropped.
  package mutating func dropExpiredFileRoots(now: Date) -> [Certificate] {
    let current = BundleDocument.unexpired(self.fileRoots, at: now)
    let expired = self.fileRoots.filter { !current.contains($0) }
    self.fileRoots = current
    return expired
  }

  /// When the next of the `ca-root` file's roots expires.
  package var nextFileRootExpiry: Date? { BundleDocument.firstExpiry(of: self.fileRoots) }
}
