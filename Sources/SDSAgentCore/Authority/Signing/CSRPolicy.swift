import SwiftASN1
import X509

/// What the CA server signs, like istio-csr: a validly signed CSR whose only SAN is the caller's
/// own SPIFFE ID — no DNS, IP or email names, no common name.
package enum CSRPolicy {
  package enum Decision: Sendable, Equatable {
    case sign(publicKey: Certificate.PublicKey)
    /// The CSR is malformed: INVALID_ARGUMENT.
    case malformed(String)
    /// The CSR asks for names the caller may not have: PERMISSION_DENIED.
    case forbidden(String)
  }

  package static func evaluate(pem: String, caller: SPIFFEID) -> Decision {
    let csr: CertificateSigningRequest
    do {
      csr = try CertificateSigningRequest(pemEncoded: pem)
    } catch {
      return .malformed("the CSR is not a PEM-encoded PKCS#10 request: \(error)")
    }
    guard csr.publicKey.isValidSignature(csr.signature, for: csr) else {
      return .malformed("the CSR's signature does not verify with its public key")
    }
    if csr.subject.contains(where: { $0.contains(where: { $0.type == .RDNAttributeType.commonName }) }) {
      return .forbidden("the CSR has a common name; only a URI SAN with the caller's SPIFFE ID is allowed")
    }
    let names: SubjectAlternativeNames
    do {
      guard let sans = try csr.attributes.extensionRequest?.extensions.subjectAlternativeNames else {
        return .forbidden("the CSR has no subject alternative name; it must name \(caller)")
      }
      names = sans
    } catch {
      return .malformed("the CSR's extension request does not parse: \(error)")
    }
    var uris: [String] = []
    for name in names {
      switch name {
      case .uniformResourceIdentifier(let uri): uris.append(uri)
      default:
        return .forbidden(
          "the CSR asks for \(Self.describe(name)); only a URI SAN with the caller's SPIFFE ID is allowed")
      }
    }
    guard uris == [caller.description] else {
      return .forbidden("the CSR asks for \(uris), but the caller is \(caller)")
    }
    return .sign(publicKey: csr.publicKey)
  }

  static func describe(_ name: GeneralName) -> String {
    switch name {
    case .dnsName(let dns): return "the DNS name \(dns)"
    case .rfc822Name(let email): return "the email address \(email)"
    case .ipAddress(let bytes):
      let octets = Array(bytes.bytes)
      if octets.count == 4 { return "the IP address " + octets.map(String.init).joined(separator: ".") }
      let groups = stride(from: 0, to: octets.count, by: 2).map {
        String(UInt16(octets[$0]) << 8 | UInt16(octets[$0 + 1]), radix: 16)
      }
      return "the IP address " + groups.joined(separator: ":")
    default: return "\(name)"
    }
  }
}
