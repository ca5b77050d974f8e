import SwiftASN1

extension CertificateRevocationList {
  /// The most CRLs one file or answer is read for.
  package static let maximumPerDocument = 16

  /// Reads the CRLs in `bytes`: one DER CRL, or PEM text with one or more `X509 CRL` blocks
  /// (other blocks are skipped), as distribution points and CA files publish them.
  package static func read(_ bytes: [UInt8]) throws(CRLError) -> [CertificateRevocationList] {
    guard bytes.count <= Self.maximumEncodedLength else {
      throw CRLError(.unparsable, "the CRL is \(bytes.count) bytes, over the limit of \(Self.maximumEncodedLength)")
    }
    guard bytes.first != 0x30 else { return [try CertificateRevocationList(derEncoded: bytes)] }
    let documents: [PEMDocument]
    do {
      documents = try PEMDocument.parseMultiple(pemString: String(decoding: bytes, as: UTF8.self))
    } catch {
      throw CRLError(.unparsable, "neither a DER CRL nor PEM", cause: error)
    }
    let blocks = documents.filter { $0.discriminator == "X509 CRL" }
    guard !blocks.isEmpty else { throw CRLError(.unparsable, "the PEM text holds no X509 CRL block") }
    guard blocks.count <= Self.maximumPerDocument else {
      throw CRLError(.unparsable, "the PEM text holds \(blocks.count) CRLs; at most \(Self.maximumPerDocument)")
    }
    var lists: [CertificateRevocationList] = []
    for block in blocks {
      lists.append(try CertificateRevocationList(derEncoded: block.derBytes))
    }
    return lists
  }
}
