import Synchronization

extension CRLDistributionServer {
  /// How many connections the CRL server serves now.
  final class OpenConnections: Sendable {
    private let count = Mutex(0)

    func admit(below limit: Int) -> Bool {
      self.count.withLock { count in
        guard count < limit else { return false }
        count += 1
        return true
      }
    }

    func release() {
      self.count.withLock { $0 -= 1 }
    }
  }
}
