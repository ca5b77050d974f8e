import X509

/// The roots a workload trusts for one trust domain; served as `ROOTCA`. A set: each root once,
/// in a stable order (oldest first), so two bundles are equal exactly when they hold the same
/// roots, and a bundle's version changes only when its set does.
public struct TrustBundle: Sendable, Equatable {
  public let roots: [Certificate]

  public init(roots: [Certificate]) {
    var unique: [Certificate] = []
    for root in roots where !unique.contains(root) {
      unique.append(root)
    }
    self.roots = unique.sorted { ($0.notValidBefore, $0.serialHex) < ($1.notValidBefore, $1.serialHex) }
  }

  public func pemString() throws -> String {
    try self.roots.map { try $0.pemString() }.joined(separator: "\n") + "\n"
  }
}
