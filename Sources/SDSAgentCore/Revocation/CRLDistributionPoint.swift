import SwiftASN1
import X509

/// Where a CA publishes its CRL over plain HTTP (RFC 5280 §4.2.1.13): the one `fullName` URI of
/// the `cRLDistributionPoints` extension `ca serve --crl-url` writes into each leaf, and what a
/// fetch-mode agent reads from its own leaf to follow that CRL. CRLs are signed, so plain HTTP
/// is what the RFC expects.
package struct CRLDistributionPoint: Sendable, Hashable, CustomStringConvertible {
  /// An `http://` URL of printable ASCII.
  package let url: String

  /// The longest URL taken, from a flag or from a certificate.
  package static let maximumLength = 2048

  /// `nil` unless `url` is an `http://` URL with a host, of at most 2048 printable ASCII characters.
  package init?(url: String) {
    guard url.utf8.count <= Self.maximumLength, url.utf8.allSatisfy({ (0x21...0x7E).contains($0) }),
      url.lowercased().hasPrefix("http://"), url.dropFirst(7).first.map({ $0 != "/" }) ?? false
    else { return nil }
    self.url = url
  }

  /// The first `http://` distribution point of `certificate`, if it names one.
  package init?(of certificate: Certificate) {
    guard let item = certificate.extensions.first(where: { $0.oid == .crlDistributionPoints }),
      let uri = try? Self.uris(in: item.value).lazy.compactMap(Self.init(url:)).first
    else { return nil }
    self = uri
  }

  package var description: String { self.url }

  /// CRLDistributionPoints ::= SEQUENCE OF DistributionPoint; each `distributionPoint [0]` (a
  /// CHOICE, so explicitly tagged) holding `fullName [0] GeneralNames`: the URIs in order.
  private static func uris(in value: ArraySlice<UInt8>) throws -> [String] {
    let nameTag = ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)
    var uris: [String] = []
    try DER.sequence(try DER.parse(value), identifier: .sequence) { points in
      while let point = points.next() {
        guard case .constructed(let fields) = point.content else { continue }
        for field in fields where field.identifier == nameTag {
          guard case .constructed(let names) = field.content else { continue }
          for fullName in names where fullName.identifier == nameTag {
            guard case .constructed(let generalNames) = fullName.content else { continue }
            for name in generalNames {
              if case .uniformResourceIdentifier(let uri) = try GeneralName(derEncoded: name) { uris.append(uri) }
            }
          }
        }
      }
    }
    return uris
  }
}

extension CRLDistributionPoint: CertificateExtensionConvertible {
  package func makeCertificateExtension() throws -> Certificate.Extension {
    let nameTag = ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)
    var serializer = DER.Serializer()
    try serializer.appendConstructedNode(identifier: .sequence) { points in
      try points.appendConstructedNode(identifier: .sequence) { point in
        try point.appendConstructedNode(identifier: nameTag) { name in
          try name.appendConstructedNode(identifier: nameTag) { fullName in
            try fullName.serialize(GeneralName.uniformResourceIdentifier(self.url))
          }
        }
      }
    }
    return Certificate.Extension(oid: .crlDistributionPoints, critical: false, value: serializer.serializedBytes[...])
  }
}

extension ASN1ObjectIdentifier {
  static let crlDistributionPoints: ASN1ObjectIdentifier = [2, 5, 29, 31]
}
