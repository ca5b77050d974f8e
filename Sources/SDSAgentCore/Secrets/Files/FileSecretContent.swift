import Crypto
import EnvoySDSProtos
import Foundation
import SwiftASN1
import X509

/// A secret read from files and checked before it is served: a TLS certificate whose key matches
/// its leaf, whose chain is in order and whose leaf is valid now; or a validation context with at
/// least one CA certificate. Encoded once as the Envoy message it is served as.
package struct FileSecretContent: Sendable, Equatable {
  package enum Kind: String, Sendable {
    case tlsCertificate = "tls_certificate"
    case validationContext = "validation_context"
    case genericSecret = "generic_secret"
  }

  package let kind: Kind
  /// The leaf (or first CA) certificate's serial: what changes when the files do.
  package let serial: String
  package let notAfter: Date
  /// A digest of every byte served, so that a change of any of them is a new version.
  package let digest: Data
  let tlsCertificate: Envoy_Extensions_TransportSockets_Tls_V3_TlsCertificate?
  let validationContext: Envoy_Extensions_TransportSockets_Tls_V3_CertificateValidationContext?
  /// What a generic secret serves; nil for the other kinds.
  package let genericSecret: Envoy_Extensions_TransportSockets_Tls_V3_GenericSecret?

  package static func == (lhs: Self, rhs: Self) -> Bool { lhs.kind == rhs.kind && lhs.digest == rhs.digest }

  /// A TLS certificate from its chain (leaf first) and key, with an optional OCSP staple (DER).
  package static func tlsCertificate(
    chainPEM: String, keyPEM: String, ocspStaple: Data? = nil, now: Date
  ) throws(FileSecretError) -> FileSecretContent {
    let chain = try Self.certificates(chainPEM, what: "certificate")
    let key: Certificate.PrivateKey
    do {
      key = try Certificate.PrivateKey(pemEncoded: keyPEM)
    } catch {
      throw FileSecretError(.unparsable, "the key is not a PEM private key this agent reads (PKCS#8, SEC1 or PKCS#1)")
    }
    let leaf = chain[0]
    guard key.publicKey == leaf.publicKey else {
      throw FileSecretError(.keyMismatch, "the key does not match the certificate \(leaf.serialHex)")
    }
    for (child, parent) in zip(chain, chain.dropFirst()) where child.issuer != parent.subject {
      throw FileSecretError(
        .chainOrder, "the chain is out of order: \(child.subject) is issued by \(child.issuer), not \(parent.subject)")
    }
    guard now >= leaf.notValidBefore else {
      throw FileSecretError(.notYetValid, "the certificate \(leaf.serialHex) is valid only from \(leaf.notValidBefore)")
    }
    guard now < leaf.notValidAfter else {
      throw FileSecretError(.expired, "the certificate \(leaf.serialHex) expired at \(leaf.notValidAfter)")
    }
    var message = Envoy_Extensions_TransportSockets_Tls_V3_TlsCertificate()
    message.certificateChain.inlineBytes = Data(chainPEM.utf8)
    message.privateKey.inlineBytes = Data(keyPEM.utf8)
    if let ocspStaple { message.ocspStaple.inlineBytes = ocspStaple }
    return FileSecretContent(
      kind: .tlsCertificate, serial: leaf.serialHex, notAfter: leaf.notValidAfter,
      digest: Self.digest([Data(chainPEM.utf8), Data(keyPEM.utf8), ocspStaple ?? Data()]),
      tlsCertificate: message, validationContext: nil, genericSecret: nil)
  }

  /// A validation context from CA certificates, with an optional CRL (PEM or DER, passed on).
  package static func validationContext(caPEM: String, crl: Data? = nil, now: Date) throws(FileSecretError)
    -> FileSecretContent
  {
    let certificates = try Self.certificates(caPEM, what: "CA certificate")
    guard
      let first = certificates.first(where: {
        if case .isCertificateAuthority = (try? $0.extensions.basicConstraints) ?? .notCertificateAuthority {
          return true
        }
        return false
      })
    else {
      throw FileSecretError(.noCA, "the file holds no CA certificate (basicConstraints CA:TRUE)")
    }
    var context = Envoy_Extensions_TransportSockets_Tls_V3_CertificateValidationContext()
    context.trustedCa.inlineBytes = Data(caPEM.utf8)
    if let crl { context.crl.inlineBytes = crl }
    return FileSecretContent(
      kind: .validationContext, serial: first.serialHex, notAfter: first.notValidAfter,
      digest: Self.digest([Data(caPEM.utf8), crl ?? Data()]), tlsCertificate: nil, validationContext: context,
      genericSecret: nil)
  }

  private static func certificates(_ pem: String, what: String) throws(FileSecretError) -> [Certificate] {
    let certificates: [Certificate]
    do {
      certificates = try PEMDocument.parseMultiple(pemString: pem).map(Certificate.init(pemDocument:))
    } catch {
      throw FileSecretError(.unparsable, "the \(what) file is not PEM certificates")
    }
    guard !certificates.isEmpty else { throw FileSecretError(.unparsable, "the \(what) file holds no certificate") }
    return certificates
  }

  static func digest(_ parts: [Data]) -> Data {
    var hasher = Crypto.SHA256()
    for part in parts {
      hasher.update(data: withUnsafeBytes(of: UInt64(part.count).bigEndian) { Data($0) })
      hasher.update(data: part)
    }
    return Data(hasher.finalize())
  }
}

/// Why files cannot be served as a secret; the reason is a closed set, for metric labels.
package struct FileSecretError: AgentFailure, Equatable {
  package enum Reason: String, Sendable, CaseIterable {
    case missing, unreadable, unparsable
    case keyMismatch = "key_mismatch"
    case chainOrder = "chain_order"
    case expired
    case notYetValid = "not_yet_valid"
    case noCA = "no_ca"
    case keyPermissions = "key_permissions"
    case tooLarge = "too_large"
    /// A generic secret's file holds nothing (or only a line break): Envoy would refuse every request.
    case empty
    /// The file is the agent's own key material (its state directory, its CA key).
    case agentKeyMaterial = "agent_key_material"
    /// An on-the-fly name's file resolves outside the directories the name may read.
    case outsideDirectories = "outside_directories"
  }

  package let reason: Reason
  package let message: String
  package var code: Reason { self.reason }

  package init(_ reason: Reason, _ message: String) {
    self.reason = reason
    self.message = message
  }

  package var description: String { "\(self.reason.rawValue): \(self.message)" }
}
