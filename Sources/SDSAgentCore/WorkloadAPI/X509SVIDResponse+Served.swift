import EnvoySDSProtos
import Foundation
import SwiftASN1
import X509

extension SpiffeWorkload_X509SVIDResponse {
  /// The caller's whole X.509 state: its SVID (the certificate and key its identity serves over
  /// SDS), its trust domain's roots, the federated domains' roots and the own domain's CRLs.
  package init(svid: CertifiedKey, trust: ServedTrust) throws(WorkloadAPIFailure) {
    var message = SpiffeWorkload_X509SVID()
    message.spiffeID = svid.identity.description
    message.x509Svid = try Self.der(svid.chain)
    message.x509SvidKey = Data(try svid.privateKey.pkcs8DER())
    message.bundle = try Self.der(trust.own.roots)
    self.init()
    self.svids = [message]
    for (domain, bundle) in trust.federated {
      self.federatedBundles[domain.spiffeID] = try Self.der(bundle.roots)
    }
    self.crl = trust.revocationLists.map { Data($0.derBytes) }
  }

  /// Certificates as the Workload API carries them: their DER, concatenated.
  static func der(_ certificates: [Certificate]) throws(WorkloadAPIFailure) -> Data {
    var serializer = DER.Serializer()
    do {
      for certificate in certificates {
        try serializer.serialize(certificate)
      }
    } catch {
      throw WorkloadAPIFailure(.encoding, "a certificate cannot be written as DER", cause: error)
    }
    return Data(serializer.serializedBytes)
  }
}
