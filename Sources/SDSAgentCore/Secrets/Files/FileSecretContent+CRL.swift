import Foundation
import SwiftASN1
import X509

extension FileSecretContent {
  /// What in a validation context's CRL file makes Envoy refuse every client the context checks
  /// (OpenSSL then has no usable list for the client's CA): a list signed by none of the file's CA
  /// certificates, by one whose keyUsage lacks `cRLSign`, or past its nextUpdate. The file is
  /// served as it is all the same; `nil` when nothing is wrong, or when the agent cannot read the
  /// list (Envoy reads more kinds of CRL than the agent checks).
  package static func crlWarning(caPEM: String, crl: Data, now: Date) -> String? {
    guard let documents = try? PEMDocument.parseMultiple(pemString: caPEM) else { return nil }
    let certificates = documents.compactMap { try? Certificate(pemDocument: $0) }
    var problems: [String] = []
    for list in Self.revocationLists(in: crl) {
      let issuer = BoundedText("\(list.issuer)", limit: 200)
      guard let signer = certificates.first(where: { list.isSigned(by: $0) }) else {
        problems.append("the list of \(issuer) is signed by none of the CA certificates")
        continue
      }
      if let usage = try? signer.extensions.keyUsage, !usage.cRLSign {
        problems.append("the CA \(issuer) may not sign lists (its keyUsage lacks cRLSign)")
      }
      if list.nextUpdate <= now {
        problems.append("the list of \(issuer) expired at \(list.nextUpdate.formatted(.iso8601))")
      }
    }
    guard !problems.isEmpty else { return nil }
    return "the CRL file is served, but Envoy refuses every client this context checks until it is fixed: "
      + problems.joined(separator: "; ")
  }

  /// The lists of a CRL file, PEM (any number of blocks) or one DER list; those the agent reads.
  private static func revocationLists(in data: Data) -> [CertificateRevocationList] {
    let text = String(decoding: data, as: UTF8.self)
    guard text.contains("-----BEGIN X509 CRL-----") else {
      return (try? CertificateRevocationList(derEncoded: Array(data))).map { [$0] } ?? []
    }
    let documents = (try? PEMDocument.parseMultiple(pemString: text)) ?? []
    return documents.filter { $0.discriminator == "X509 CRL" }.compactMap {
      try? CertificateRevocationList(derEncoded: $0.derBytes)
    }
  }
}
