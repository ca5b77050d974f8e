import Foundation
import X509

/// The own trust domain's bundle in fetch mode, as a value: the roots of the CA's latest
/// response, the roots of the `ca-root` file (how a fleet distributes a new root ahead of the
/// CA's switch), and roots the CA stopped sending, kept until the leaves chained to them have
/// expired.
public struct FetchedTrust: Sendable, Equatable {
  public private(set) var responseRoots: [Certificate] = []
  public private(set) var fileRoots: [Certificate] = []
  /// Roots the CA no longer sends, and until when they stay trusted.
  public private(set) var retained: [Certificate: Date] = [:]

  public init(fileRoots: [Certificate] = []) {
    self.fileRoots = fileRoots
  }

  /// Every root trusted now.
  public var bundle: TrustBundle {
    TrustBundle(roots: self.responseRoots + self.fileRoots + self.retained.keys)
  }

  /// Takes the roots of a CA response. Roots of the previous response that this one lacks stay
  /// trusted until `now + retention`: a leaf chained to them, here or at a peer, lives at most
  /// that long.
  public mutating func observe(response roots: [Certificate], now: Date, retention: Duration) {
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
  public mutating func setFileRoots(_ roots: [Certificate]) {
    self.fileRoots = roots
  }

  /// Drops retained roots whose time is over.
  public mutating func prune(now: Date) {
    self.retained = self.retained.filter { $0.value > now }
  }

  /// When the next retained root is dropped.
  public var nextExpiry: Date? { self.retained.values.min() }
}
