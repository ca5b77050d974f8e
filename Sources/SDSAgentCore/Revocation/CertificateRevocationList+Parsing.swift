import Foundation
import SwiftASN1
import X509

extension CertificateRevocationList {
  /// The longest CRL the agent reads (a file, or a fetched one).
  package static let maximumEncodedLength = 4 << 20

  /// Reads a DER CRL. Only v2 CRLs signed with ECDSA (SHA-256/384/512) or SHA-256 with RSA are
  /// read; whether the signature holds is `isSigned(by:)`'s question.
  package init(derEncoded bytes: [UInt8]) throws(CRLError) {
    guard bytes.count <= Self.maximumEncodedLength else {
      throw CRLError(.unparsable, "the CRL is \(bytes.count) bytes, over the limit of \(Self.maximumEncodedLength)")
    }
    do {
      let root = try DER.parse(bytes)
      var parsed:
        (
          issuer: DistinguishedName, number: Int, thisUpdate: Date, nextUpdate: Date, entries: [Entry],
          tbs: ArraySlice<UInt8>, algorithm: CRLSignatureAlgorithm, signature: [UInt8]
        )?
      try DER.sequence(root, identifier: .sequence) { nodes in
        guard let tbsNode = nodes.next(), let algorithmNode = nodes.next(), let signatureNode = nodes.next() else {
          throw CRLError(.unparsable, "a CRL is three fields: the list, the algorithm, the signature")
        }
        guard let algorithm = try CRLSignatureAlgorithm(algorithmIdentifier: algorithmNode) else {
          throw CRLError(.unparsable, "the CRL is signed with an algorithm the agent does not read")
        }
        let signature = try ASN1BitString(derEncoded: signatureNode)
        let list = try Self.parseList(tbsNode, algorithm: algorithm)
        parsed = (
          list.issuer, list.number, list.thisUpdate, list.nextUpdate, list.entries, tbsNode.encodedBytes, algorithm,
          Array(signature.bytes)
        )
      }
      guard let parsed else { throw CRLError(.unparsable, "the CRL is empty") }
      self.issuer = parsed.issuer
      self.number = parsed.number
      self.thisUpdate = parsed.thisUpdate
      self.nextUpdate = parsed.nextUpdate
      self.entries = parsed.entries
      self.derBytes = bytes
      self.signedBytes = parsed.tbs
      self.signatureAlgorithm = parsed.algorithm
      self.signatureBytes = parsed.signature
    } catch let error as CRLError {
      throw error
    } catch {
      throw CRLError(.unparsable, "the CRL is not valid DER", cause: error)
    }
  }

  /// Reads the first `X509 CRL` block of PEM text.
  package init(pemEncoded text: String) throws(CRLError) {
    let document: PEMDocument
    do {
      document = try PEMDocument(pemString: text)
    } catch {
      throw CRLError(.unparsable, "not a PEM document", cause: error)
    }
    guard document.discriminator == "X509 CRL" else {
      throw CRLError(.unparsable, "the PEM block is \(BoundedText(document.discriminator, limit: 40)), not X509 CRL")
    }
    try self.init(derEncoded: document.derBytes)
  }

  private static func parseList(_ node: ASN1Node, algorithm: CRLSignatureAlgorithm) throws -> (
    issuer: DistinguishedName, number: Int, thisUpdate: Date, nextUpdate: Date, entries: [Entry]
  ) {
    try DER.sequence(node, identifier: .sequence) { nodes in
      guard let version = nodes.next(), try Int(derEncoded: version) == 1 else {
        throw CRLError(.unparsable, "only version 2 CRLs are read")
      }
      guard let inner = nodes.next(), try CRLSignatureAlgorithm(algorithmIdentifier: inner) == algorithm else {
        throw CRLError(.unparsable, "the CRL names two different signature algorithms")
      }
      guard let issuerNode = nodes.next(), let thisNode = nodes.next() else {
        throw CRLError(.unparsable, "the CRL has no issuer or thisUpdate")
      }
      let issuer = try DistinguishedName(derEncoded: issuerNode)
      let thisUpdate = try Self.parseTime(thisNode)
      var rest: [ASN1Node] = []
      while let node = nodes.next() { rest.append(node) }
      guard let nextNode = rest.first, let nextUpdate = try? Self.parseTime(nextNode) else {
        throw CRLError(.unparsable, "the CRL has no nextUpdate (the agent serves only CRLs that say when they expire)")
      }
      rest.removeFirst()
      var entries: [Entry] = []
      if let revoked = rest.first, revoked.identifier == .sequence {
        entries = try DER.sequence(revoked, identifier: .sequence) { revokedNodes in
          var list: [Entry] = []
          while let entry = revokedNodes.next() { list.append(try Self.parseEntry(entry)) }
          return list
        }
        rest.removeFirst()
      }
      var number: Int?
      if let extensionsNode = rest.first {
        number = try DER.explicitlyTagged(extensionsNode, tagNumber: 0, tagClass: .contextSpecific) { wrapped in
          try DER.sequence(wrapped, identifier: .sequence) { extensions -> Int? in
            var found: Int?
            while let node = extensions.next() {
              let item = try Certificate.Extension(derEncoded: node)
              if item.oid == .crlNumber { found = try Int(derEncoded: item.value) }
            }
            return found
          }
        }
        rest.removeFirst()
      }
      guard rest.isEmpty else { throw CRLError(.unparsable, "the CRL has fields after its extensions") }
      guard let number, number >= 0 else { throw CRLError(.unparsable, "the CRL has no CRL number") }
      return (issuer, number, thisUpdate, nextUpdate, entries)
    }
  }

  private static func parseEntry(_ node: ASN1Node) throws -> Entry {
    try DER.sequence(node, identifier: .sequence) { nodes in
      guard let serialNode = nodes.next(), case .primitive(let contents) = serialNode.content,
        serialNode.identifier == .integer, let timeNode = nodes.next()
      else { throw CRLError(.unparsable, "a revoked entry has no serial or date") }
      guard let serial = CertificateSerial(integerContents: contents) else {
        throw CRLError(.unparsable, "a revoked serial is negative or over 20 octets")
      }
      let revokedAt = try Self.parseTime(timeNode)
      var reason: RevocationReason?
      if let extensionsNode = nodes.next() {
        try DER.sequence(extensionsNode, identifier: .sequence) { extensions in
          while let item = extensions.next() {
            let entryExtension = try Certificate.Extension(derEncoded: item)
            guard entryExtension.oid == .crlReason else { continue }
            let value = try DER.parse(entryExtension.value)
            guard value.identifier == .enumerated, case .primitive(let code) = value.content, code.count == 1 else {
              throw CRLError(.unparsable, "a reason code is not one ENUMERATED octet")
            }
            reason = RevocationReason.allCases.first { $0.code == Int(code.first!) }
          }
        }
      }
      return Entry(serial: serial, revokedAt: revokedAt, reason: reason)
    }
  }

  private static func parseTime(_ node: ASN1Node) throws -> Date {
    let parts: (Int, Int, Int, Int, Int, Int)
    switch node.identifier {
    case .utcTime:
      let time = try UTCTime(derEncoded: node)
      parts = (time.year, time.month, time.day, time.hours, time.minutes, time.seconds)
    case .generalizedTime:
      let time = try GeneralizedTime(derEncoded: node)
      parts = (time.year, time.month, time.day, time.hours, time.minutes, time.seconds)
    default:
      throw CRLError(.unparsable, "a CRL date is neither UTCTime nor GeneralizedTime")
    }
    let components = DateComponents(
      year: parts.0, month: parts.1, day: parts.2, hour: parts.3, minute: parts.4, second: parts.5)
    guard let date = Calendar.utc.date(from: components) else {
      throw CRLError(.unparsable, "a CRL date is not a date")
    }
    return date
  }
}
