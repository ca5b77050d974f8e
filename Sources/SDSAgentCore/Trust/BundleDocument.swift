import Foundation
import SwiftASN1
import X509

/// A trust bundle file's content, read into the roots it trusts: PEM `CERTIFICATE` blocks, or a
/// SPIFFE bundle document (a JWKS whose `x509-svid` keys each carry one root in `x5c`).
///
/// The format is told by the first byte that is not whitespace: `{` is a SPIFFE bundle,
/// anything else PEM. Certificates that are not CAs are skipped and roots that expired are
/// dropped; a file that leaves no root at all is refused with a `BundleDocumentError`. A root
/// that is not valid yet is kept: a trust domain publishes its next root before it signs with it.
/// A SPIFFE bundle's `jwt-svid` keys are its JWT authorities (EC P-256 keys only; keys of other
/// types are skipped), at most `maximumJWTKeys`.
package struct BundleDocument: Sendable {
  /// The largest file read, checked before anything is parsed; a bundle holds a few roots.
  package static let maximumSize = 1 << 20

  package enum Format: String, Sendable {
    case pem
    case spiffeBundle = "spiffe_bundle"
  }

  package let format: Format
  /// The CA certificates of the document that are not expired, each once.
  package let trustBundle: TrustBundle
  /// How many certificates were skipped because they are not CAs.
  package let skippedNotCA: Int
  /// How many CA certificates were dropped because they had expired.
  package let droppedExpired: Int
  /// The `jwt-svid` keys of a SPIFFE bundle that verify JWT-SVIDs here (EC P-256), each once.
  package let jwtKeys: [JWTPublicKey]
  /// How many `jwt-svid` keys were skipped because they are not EC P-256 keys.
  package let skippedJWTKeys: Int

  /// The most `jwt-svid` keys a bundle may carry; a domain publishes a few.
  package static let maximumJWTKeys = 64

  /// Reads `data`, a trust bundle file's content, judging expiry at `now`.
  package init(parsing data: Data, now: Date) throws(BundleDocumentError) {
    guard data.count <= Self.maximumSize else {
      throw BundleDocumentError(
        .tooLarge,
        "the file is \(data.count) bytes; a trust bundle is at most \(Self.maximumSize) bytes (1 MiB): "
          + "is it the right file? It should hold only the trust domain's root certificates"
      )
    }
    let utf8ByteOrderMark: [UInt8] = [0xEF, 0xBB, 0xBF]
    let text = data.starts(with: utf8ByteOrderMark) ? data.dropFirst(utf8ByteOrderMark.count) : data
    let certificates: [Certificate]
    if Self.firstSignificantByte(of: text) == UInt8(ascii: "{") {
      self.format = .spiffeBundle
      let document = try Self.spiffeBundle(in: text)
      certificates = try Self.spiffeBundleCertificates(in: document)
      (self.jwtKeys, self.skippedJWTKeys) = try Self.spiffeBundleJWTKeys(in: document)
    } else {
      self.format = .pem
      certificates = try Self.pemCertificates(in: text)
      (self.jwtKeys, self.skippedJWTKeys) = ([], 0)
    }
    guard !certificates.isEmpty else {
      throw BundleDocumentError(
        .empty,
        self.format == .pem
          ? "the file holds no certificate: put the trust domain's root certificates in it as PEM CERTIFICATE blocks"
          : "the SPIFFE bundle has no x509-svid key: it must carry the trust domain's X.509 roots, not only JWT keys"
      )
    }
    let authorities = certificates.filter(\.isCertificateAuthority)
    guard !authorities.isEmpty else {
      throw BundleDocumentError(
        .noCACertificate,
        (certificates.count == 1 ? "its one certificate is not" : "none of its \(certificates.count) certificates is")
          + " a CA (basicConstraints CA:TRUE): a trust bundle holds the trust domain's root certificates, not its SVIDs"
      )
    }
    let current = Self.unexpired(authorities, at: now)
    guard !current.isEmpty else { throw Self.allExpired(authorities, now: now) }
    self.trustBundle = TrustBundle(roots: current)
    self.skippedNotCA = certificates.count - authorities.count
    self.droppedExpired = authorities.count - current.count
  }

  /// The roots of `roots` that have not expired at `now` (a root is valid through its notAfter).
  package static func unexpired(_ roots: [Certificate], at now: Date) -> [Certificate] {
    roots.filter { now <= $0.notValidAfter }
  }

  /// Why a file whose roots all expired is refused; also said when its last root expires while
  /// it is served.
  package static func allExpired(_ roots: [Certificate], now: Date) -> BundleDocumentError {
    let lastExpiry = roots.map(\.notValidAfter).max() ?? now
    return BundleDocumentError(
      .allExpired,
      (roots.count == 1 ? "its one root certificate expired" : "all of its \(roots.count) roots expired, the last")
        + " at \(lastExpiry.formatted(.iso8601)): replace the file with the trust domain's current bundle"
    )
  }

  /// When the first of `roots` expires: the first second past its notAfter.
  package static func firstExpiry(of roots: [Certificate]) -> Date? {
    roots.map(\.notValidAfter).min().map { $0.addingTimeInterval(1) }
  }

  private static func firstSignificantByte(of data: Data) -> UInt8? {
    data.first { byte in
      byte != UInt8(ascii: " ") && byte != UInt8(ascii: "\t") && byte != UInt8(ascii: "\n")
        && byte != UInt8(ascii: "\r")
    }
  }

  // MARK: PEM

  private static func pemCertificates(in data: Data) throws(BundleDocumentError) -> [Certificate] {
    guard let text = String(validating: data, as: UTF8.self) else {
      throw BundleDocumentError(
        .unparsable, "the file is neither PEM text nor a SPIFFE bundle (JSON): \(Self.expected)")
    }
    let documents: [PEMDocument]
    do {
      documents = try PEMDocument.parseMultiple(pemString: text)
    } catch {
      // swift-asn1's reason quotes the file; ours says what a well-formed block looks like.
      throw BundleDocumentError(
        .unparsable,
        "a PEM block is malformed: each -----BEGIN CERTIFICATE----- line needs its -----END CERTIFICATE----- line, "
          + "with base64 lines of at most 64 characters between them"
      )
    }
    if documents.isEmpty && !text.allSatisfy(\.isWhitespace) {
      throw BundleDocumentError(.unparsable, "the file has no PEM block and is not JSON: \(Self.expected)")
    }
    var certificates: [Certificate] = []
    for (index, document) in documents.enumerated() {
      guard document.discriminator == "CERTIFICATE" else {
        // The block's type is the file's text: bounded, since it ends up in a log line.
        let type = BoundedText(document.discriminator, limit: 40)
        if document.discriminator.hasSuffix("PRIVATE KEY") {
          throw BundleDocumentError(
            .unparsable,
            "PEM block \(index + 1) is a private key (\(type)): is it the right file? A trust bundle is public and "
              + "holds only CERTIFICATE blocks; keep keys out of it"
          )
        }
        throw BundleDocumentError(
          .unparsable, "PEM block \(index + 1) is a \"\(type)\": a trust bundle holds only CERTIFICATE blocks")
      }
      do {
        certificates.append(try Certificate(derEncoded: document.derBytes))
      } catch {
        throw BundleDocumentError(
          .unparsable, "PEM block \(index + 1) is not an X.509 certificate (\(Self.summary(of: error)))")
      }
    }
    return certificates
  }

  // MARK: SPIFFE bundle

  /// The SPIFFE Trust Domain and Bundle specification, section 4: a JWKS with a `keys` array.
  private struct JWKS: Decodable {
    struct Key: Decodable {
      let use: String?
      let x5c: [String]?
      let kty: String?
      let crv: String?
      let x: String?
      let y: String?
      let kid: String?
    }
    let keys: [Key]
  }

  private static func spiffeBundle(in data: Data) throws(BundleDocumentError) -> JWKS {
    do {
      return try JSONDecoder().decode(JWKS.self, from: data)
    } catch {
      throw BundleDocumentError(
        .unparsable, "the SPIFFE bundle is not a JWKS (\(Self.summary(of: error))): \(Self.expected)")
    }
  }

  /// The JWT authorities: `jwt-svid` keys, EC P-256 ones kept, others counted as skipped.
  private static func spiffeBundleJWTKeys(
    in document: JWKS
  ) throws(BundleDocumentError) -> (keys: [JWTPublicKey], skipped: Int) {
    let candidates = document.keys.enumerated().filter { $0.element.use == "jwt-svid" }
    guard candidates.count <= Self.maximumJWTKeys else {
      throw BundleDocumentError(
        .unparsable,
        "the SPIFFE bundle has \(candidates.count) jwt-svid keys; at most \(Self.maximumJWTKeys) are read")
    }
    var keys: [JWTPublicKey] = []
    var skipped = 0
    for (index, key) in candidates {
      do throws(JWTPublicKey.JWKRefusal) {
        let jwk = JWK(kty: key.kty, crv: key.crv, x: key.x, y: key.y, kid: key.kid, use: key.use)
        let parsed = try JWTPublicKey(jwk: jwk)
        if !keys.contains(where: { $0.kid == parsed.kid }) { keys.append(parsed) }
      } catch {
        switch error {
        case .unsupported: skipped += 1
        case .malformed(let why):
          throw BundleDocumentError(
            .unparsable, "key \(index) of the SPIFFE bundle is a jwt-svid EC P-256 key, but \(why)")
        }
      }
    }
    return (keys, skipped)
  }

  private static func spiffeBundleCertificates(in document: JWKS) throws(BundleDocumentError) -> [Certificate] {
    var certificates: [Certificate] = []
    // Keys of other uses (jwt-svid, or one a later version of the format adds) are not roots.
    for (index, key) in document.keys.enumerated() where key.use == "x509-svid" {
      let chain = key.x5c ?? []
      // As go-spiffe does: the format allows exactly one certificate per x509-svid key.
      guard chain.count == 1, let encoded = chain.first else {
        throw BundleDocumentError(
          .unparsable,
          "key \(index) of the SPIFFE bundle is an x509-svid key with \(chain.count) certificates in x5c; "
            + "the format requires exactly one, the root's DER in base64"
        )
      }
      guard let der = Data(base64Encoded: encoded) else {
        throw BundleDocumentError(
          .unparsable,
          "x5c of key \(index) of the SPIFFE bundle is not base64: it must be a certificate's DER in base64")
      }
      do {
        certificates.append(try Certificate(derEncoded: Array(der)))
      } catch {
        throw BundleDocumentError(
          .unparsable,
          "x5c of key \(index) of the SPIFFE bundle is not an X.509 certificate (\(Self.summary(of: error)))"
        )
      }
    }
    return certificates
  }

  private static let expected =
    "expected PEM CERTIFICATE blocks or a SPIFFE bundle (JSON with a \"keys\" array of x509-svid keys)"

  /// What went wrong, without the file's content: a decoding error names the place in the
  /// document, and other errors are cut short.
  private static func summary(of error: any Error) -> String {
    if let asn1 = error as? ASN1Error {
      return "DER: \(asn1.code)"
    }
    guard let decoding = error as? DecodingError else {
      return BoundedText("\(error)", limit: 160).description
    }
    func place(_ path: [any CodingKey]) -> String {
      path.isEmpty ? "the top level" : path.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
    }
    func kind(_ type: Any.Type) -> String {
      let name = "\(type)"
      if name.hasPrefix("Array") { return "an array" }
      if name.hasPrefix("Dictionary") { return "an object" }
      return name == "String" ? "a string" : name
    }
    switch decoding {
    case .keyNotFound(let key, let context):
      return "\"\(key.stringValue)\" is missing at \(place(context.codingPath))"
    case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
      return "\(place(context.codingPath)) is not \(kind(type))"
    case .dataCorrupted(let context):
      return "not valid JSON at \(place(context.codingPath))"
    @unknown default:
      return "not a JWKS"
    }
  }
}

/// Why a trust bundle file cannot be used, with what to do about it.
///
/// The message never quotes the file beyond a short bounded excerpt.
package struct BundleDocumentError: AgentFailure, Hashable {
  /// A closed set, usable as a metric label.
  package enum Reason: String, Sendable, CaseIterable {
    /// Larger than `BundleDocument.maximumSize`; not parsed.
    case tooLarge = "too_large"
    /// Neither PEM certificates nor a SPIFFE bundle, or one of its certificates does not parse.
    case unparsable
    /// The document parses but holds no X.509 certificate.
    case empty
    /// None of the certificates is a CA.
    case noCACertificate = "no_ca_certificate"
    /// Every CA certificate has expired.
    case allExpired = "all_expired"
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

extension Certificate {
  /// Whether basicConstraints says CA:TRUE; a certificate without the extension, or with one
  /// that does not parse, is not a CA.
  var isCertificateAuthority: Bool {
    guard case .isCertificateAuthority = (try? self.extensions.basicConstraints) ?? .notCertificateAuthority else {
      return false
    }
    return true
  }
}
