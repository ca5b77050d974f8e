import X509

/// The roots a workload trusts for one trust domain; served as `ROOTCA`. A set: each root once,
/// in a stable order (oldest first), so two bundles are equal exactly when they hold the same
/// roots, and a bundle's version changes only when its set does.
package struct TrustBundle: Sendable, Equatable {
  package let roots: [Certificate]

  package init(roots: [Certificate]) {
    var unique: [Certificate] = []
    for root in roots where !unique.contains(root) {
      unique.append(root)
    }
    self.roots = unique.sorted { ($0.notValidBefore, $0.serialHex) < ($1.notValidBefore, $1.serialHex) }
  }

  package func pemString() throws -> String {
    try self.roots.map { try $0.pemString() }.joined(separator: "\n") + "\n"
  }
}
