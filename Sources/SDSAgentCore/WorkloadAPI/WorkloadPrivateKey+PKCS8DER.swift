import SwiftASN1

extension WorkloadPrivateKey {
  /// PKCS#8 DER, as the Workload API's `x509_svid_key` carries it: the same encoding as the PEM
  /// that SDS serves, without its armour.
  package func pkcs8DER() throws(WorkloadAPIFailure) -> [UInt8] {
    do {
      return try PEMDocument(pemString: self.pkcs8PEM).derBytes
    } catch {
      // The PEM is the key's own; the error names only the block, never its bytes.
      throw WorkloadAPIFailure(.encoding, "the workload's private key cannot be written as PKCS#8 DER")
    }
  }
}
