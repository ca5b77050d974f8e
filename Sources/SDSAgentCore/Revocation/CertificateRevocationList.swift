import Crypto
import Foundation
import SwiftASN1
import X509
import _CryptoExtras

/// A signed X.509 v2 CRL (RFC 5280 §5): issuer, CRL number, thisUpdate/nextUpdate, the revoked
/// serials with their dates and reason codes, the issuer's key identifier. Immutable once signed.
package struct CertificateRevocationList: Sendable, Hashable {
  /// What a CRL says of one revoked certificate.
  package struct Entry: Sendable, Hashable {
    package let serial: CertificateSerial
    package let revokedAt: Date
    package let reason: RevocationReason?
  }

  package let issuer: DistinguishedName
  package let number: Int
  package let thisUpdate: Date
  package let nextUpdate: Date
  package let entries: [Entry]
  package let derBytes: [UInt8]
  /// What the signature covers, and the signature: to check a CRL that was read, not made here.
  let signedBytes: ArraySlice<UInt8>
  let signatureBytes: [UInt8]
  let signatureAlgorithm: CRLSignatureAlgorithm

  /// Signs a CRL with the issuing CA's key. `entries` whose certificate expired before
  /// `thisUpdate` are left out.
  package init(
    issuer: Certificate,
    issuerKey: Certificate.PrivateKey,
    number: Int,
    entries: [RevokedCertificate],
    thisUpdate: Date,
    nextUpdate: Date
  ) throws(CRLError) {
    guard issuer.publicKey == issuerKey.publicKey else {
      throw CRLError(.signing, "the key does not match the CRL issuer \(issuer.subject)")
    }
    guard number >= 0, nextUpdate > thisUpdate else {
      throw CRLError(.signing, "a CRL needs a non-negative number and nextUpdate after thisUpdate")
    }
    let live = entries.filter { $0.notAfter >= thisUpdate }.sorted { $0.serial < $1.serial }
    let algorithm = try Self.signatureAlgorithm(for: issuer.publicKey)
    do {
      let keyIdentifier = try issuer.extensions.subjectKeyIdentifier?.keyIdentifier
      var tbs = DER.Serializer()
      try tbs.appendConstructedNode(identifier: .sequence) { list in
        try list.serialize(1)  // v2
        try algorithm.serialize(into: &list)
        try list.serialize(issuer.subject)
        try Self.serializeTime(thisUpdate, into: &list)
        try Self.serializeTime(nextUpdate, into: &list)
        if !live.isEmpty {
          try list.appendConstructedNode(identifier: .sequence) { revoked in
            for entry in live { try Self.serialize(entry, into: &revoked) }
          }
        }
        try list.serialize(explicitlyTaggedWithTagNumber: 0, tagClass: .contextSpecific) { extensions in
          try extensions.appendConstructedNode(identifier: .sequence) { sequence in
            if let keyIdentifier {
              try sequence.serialize(
                try Certificate.Extension(AuthorityKeyIdentifier(keyIdentifier: keyIdentifier), critical: false))
            }
            var numberValue = DER.Serializer()
            try numberValue.serialize(number)
            try sequence.serialize(
              Certificate.Extension(oid: .crlNumber, critical: false, value: numberValue.serializedBytes[...]))
          }
        }
      }
      let tbsBytes = tbs.serializedBytes
      let signature = try issuerKey.sign(bytes: tbsBytes, signatureAlgorithm: algorithm.x509)
      var whole = DER.Serializer()
      try whole.appendConstructedNode(identifier: .sequence) { list in
        list.serializeRawBytes(tbsBytes)
        try algorithm.serialize(into: &list)
        try list.serialize(ASN1BitString(bytes: signature.rawRepresentation[...]))
      }
      self.derBytes = whole.serializedBytes
      self.signedBytes = tbsBytes[...]
      self.signatureBytes = signature.rawRepresentation
      self.signatureAlgorithm = algorithm
    } catch let error as CRLError {
      throw error
    } catch {
      throw CRLError(.signing, "signing the CRL of \(issuer.subject) failed", cause: error)
    }
    // What the CRL says: its dates are whole seconds.
    self.issuer = issuer.subject
    self.number = number
    self.thisUpdate = thisUpdate.wholeSeconds
    self.nextUpdate = nextUpdate.wholeSeconds
    self.entries = live.map { Entry(serial: $0.serial, revokedAt: $0.revokedAt.wholeSeconds, reason: $0.reason) }
  }

  /// True when `issuer`'s key signed this CRL and `issuer` is the CRL's issuer.
  package func isSigned(by issuer: Certificate) -> Bool {
    issuer.subject == self.issuer
      && issuer.publicKey.isValidSignature(
        self.signatureBytes, for: self.signedBytes, signatureAlgorithm: self.signatureAlgorithm.x509)
  }

  package func revokes(_ serial: CertificateSerial) -> Bool {
    self.entries.contains { $0.serial == serial }
  }

  package var pemString: String {
    PEMDocument(type: "X509 CRL", derBytes: self.derBytes).pemString
  }

  private static func serialize(_ entry: RevokedCertificate, into serializer: inout DER.Serializer) throws {
    try serializer.appendConstructedNode(identifier: .sequence) { revoked in
      revoked.appendPrimitiveNode(identifier: .integer) { $0.append(contentsOf: entry.serial.integerContents) }
      try Self.serializeTime(entry.revokedAt, into: &revoked)
      try revoked.appendConstructedNode(identifier: .sequence) { extensions in
        var reason = DER.Serializer()
        // Every CRLReason fits one content octet.
        reason.appendPrimitiveNode(identifier: .enumerated) { $0.append(UInt8(entry.reason.code)) }
        try extensions.serialize(
          Certificate.Extension(oid: .crlReason, critical: false, value: reason.serializedBytes[...]))
      }
    }
  }

  /// RFC 5280 §5.1.2.4: UTCTime through 2049, GeneralizedTime from 2050, whole seconds in UTC.
  private static func serializeTime(_ date: Date, into serializer: inout DER.Serializer) throws {
    let parts = Calendar.utc.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
    let (year, month, day) = (parts.year!, parts.month!, parts.day!)
    let (hour, minute, second) = (parts.hour!, parts.minute!, parts.second!)
    if year < 2050 {
      try serializer.serialize(
        UTCTime(year: year, month: month, day: day, hours: hour, minutes: minute, seconds: second))
    } else {
      try serializer.serialize(
        GeneralizedTime(
          year: year, month: month, day: day, hours: hour, minutes: minute, seconds: second, fractionalSeconds: 0))
    }
  }

  private static func signatureAlgorithm(for key: Certificate.PublicKey) throws(CRLError)
    -> CRLSignatureAlgorithm
  {
    if P256.Signing.PublicKey(key) != nil { return .ecdsaWithSHA256 }
    if P384.Signing.PublicKey(key) != nil { return .ecdsaWithSHA384 }
    if P521.Signing.PublicKey(key) != nil { return .ecdsaWithSHA512 }
    if _RSA.Signing.PublicKey(key) != nil { return .sha256WithRSAEncryption }
    throw CRLError(.signing, "the CA key's algorithm cannot sign a CRL here: use an ECDSA or RSA CA key")
  }
}

extension ASN1ObjectIdentifier {
  static let crlNumber: ASN1ObjectIdentifier = [2, 5, 29, 20]
  static let crlReason: ASN1ObjectIdentifier = [2, 5, 29, 21]
}

extension Date {
  var wholeSeconds: Date { Date(timeIntervalSince1970: self.timeIntervalSince1970.rounded(.down)) }
}

extension Calendar {
  static let utc: Calendar = {
    var calendar = Calendar(identifier: .gregorian)
    calendar.timeZone = TimeZone(identifier: "UTC")!
    return calendar
  }()
}
