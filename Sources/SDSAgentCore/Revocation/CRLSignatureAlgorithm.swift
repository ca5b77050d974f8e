import SwiftASN1
import X509

/// The AlgorithmIdentifier a CRL names twice (inside and outside what is signed), for the CA key
/// types the agent accepts. swift-certificates keeps its own encoder of these internal.
enum CRLSignatureAlgorithm {
  case ecdsaWithSHA256
  case ecdsaWithSHA384
  case ecdsaWithSHA512
  case sha256WithRSAEncryption

  var x509: Certificate.SignatureAlgorithm {
    switch self {
    case .ecdsaWithSHA256: .ecdsaWithSHA256
    case .ecdsaWithSHA384: .ecdsaWithSHA384
    case .ecdsaWithSHA512: .ecdsaWithSHA512
    case .sha256WithRSAEncryption: .sha256WithRSAEncryption
    }
  }

  /// Reads an AlgorithmIdentifier; nil for any other algorithm.
  init?(algorithmIdentifier node: ASN1Node) throws {
    let oid = try DER.sequence(node, identifier: .sequence) { nodes -> ASN1ObjectIdentifier in
      guard let first = nodes.next() else { throw ASN1Error.invalidASN1Object(reason: "empty AlgorithmIdentifier") }
      let oid = try ASN1ObjectIdentifier(derEncoded: first)
      while nodes.next() != nil {}  // parameters: NULL for RSA, absent for ECDSA
      return oid
    }
    guard
      let algorithm = [Self.ecdsaWithSHA256, .ecdsaWithSHA384, .ecdsaWithSHA512, .sha256WithRSAEncryption]
        .first(where: { $0.oid == oid })
    else { return nil }
    self = algorithm
  }

  private var oid: ASN1ObjectIdentifier {
    switch self {
    case .ecdsaWithSHA256: [1, 2, 840, 10045, 4, 3, 2]
    case .ecdsaWithSHA384: [1, 2, 840, 10045, 4, 3, 3]
    case .ecdsaWithSHA512: [1, 2, 840, 10045, 4, 3, 4]
    case .sha256WithRSAEncryption: [1, 2, 840, 113_549, 1, 1, 11]
    }
  }

  func serialize(into serializer: inout DER.Serializer) throws {
    try serializer.appendConstructedNode(identifier: .sequence) { identifier in
      try identifier.serialize(self.oid)
      // RFC 4055 §5: RSA's parameters are NULL; RFC 5758 §3.2: ECDSA's are absent.
      if case .sha256WithRSAEncryption = self { try identifier.serialize(ASN1Null()) }
    }
  }
}
