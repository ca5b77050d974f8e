/// The kind of private key the agent generates for a workload.
package enum WorkloadKeyType: String, Sendable, CaseIterable {
  case ecdsaP256 = "ecdsa-p256"
  case rsa2048 = "rsa-2048"

  /// Generates a fresh key of this type; it exists only in memory.
  package func generate() throws -> WorkloadPrivateKey {
    switch self {
    case .ecdsaP256: return WorkloadPrivateKey(p256: .init())
    case .rsa2048: return try WorkloadPrivateKey(rsa: .init(keySize: .bits2048))
    }
  }
}
