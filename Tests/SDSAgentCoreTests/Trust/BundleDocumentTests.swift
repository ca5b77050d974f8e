import Crypto
import Foundation
import SDSAgentCore
import SwiftASN1
import Testing
import X509

@Suite struct BundleDocumentTests {
  static let now = Fixtures.now
  static let day: TimeInterval = 86400

  /// A self-signed CA valid from a minute before `from` for `days` days.
  static func root(_ trustDomain: String = "other.example", from: Date = now, days: Double = 365) throws -> Certificate
  {
    try CAMaterial.generateRoot(trustDomain: trustDomain, now: from, validity: .seconds(days * day)).certificate
  }

  static func pem(_ certificates: [Certificate]) throws -> Data {
    Data(try certificates.map { try $0.pemString() + "\n" }.joined().utf8)
  }

  static func der(_ certificate: Certificate) throws -> Data {
    var serializer = DER.Serializer()
    try serializer.serialize(certificate)
    return Data(serializer.serializedBytes)
  }

  static func x509SVIDKey(_ certificate: Certificate) throws -> [String: Any] {
    ["use": "x509-svid", "kty": "EC", "crv": "P-256", "x5c": [try der(certificate).base64EncodedString()]]
  }

  static var jwtSVIDKey: [String: Any] {
    [
      "use": "jwt-svid", "kty": "EC", "kid": "key-1", "crv": "P-256",
      "x": "fK-wKTnKL7KFLM27lqq5DC-bxrVaH6rDV-IcCSEOeL4", "y": "wq-g3TQWxYlV51TCPH030yXsRxvujD4hUUaIQrXk4KI",
    ]
  }

  static func spiffeBundle(_ keys: [[String: Any]], extra: [String: Any] = [:]) throws -> Data {
    try JSONSerialization.data(withJSONObject: extra.merging(["keys": keys]) { $1 }, options: [.prettyPrinted])
  }

  static func reason(of data: Data) -> BundleDocumentError.Reason? {
    do {
      _ = try BundleDocument(parsing: data, now: now)
      return nil
    } catch {
      return error.reason
    }
  }

  @Test func readsSeveralPEMRootsAsASet() throws {
    let roots = [try Self.root("a.example"), try Self.root("b.example"), try Self.root("c.example")]
    // openssl's `-showcerts` and bag-attribute text between blocks is not part of any block.
    var data = Data("subject=O=a.example\n".utf8) + (try Self.pem([roots[0]]))
    data += Data("\nsome comment\n".utf8) + (try Self.pem([roots[1], roots[2], roots[0]]))
    let document = try BundleDocument(parsing: data, now: Self.now)
    #expect(document.format == .pem)
    #expect(document.trustBundle == TrustBundle(roots: roots))
    #expect(document.trustBundle.roots.count == 3)
    #expect(document.skippedNotCA == 0)
    #expect(document.droppedExpired == 0)
  }

  @Test func readsTheX509SVIDKeysOfASPIFFEBundle() throws {
    let roots = [try Self.root(), try Self.root(from: Self.now.addingTimeInterval(60))]
    let data = try Self.spiffeBundle(
      [try Self.x509SVIDKey(roots[0]), Self.jwtSVIDKey, try Self.x509SVIDKey(roots[1])],
      extra: ["spiffe_refresh_hint": 300, "spiffe_sequence": 7]
    )
    let document = try BundleDocument(parsing: Data("\n  ".utf8) + data, now: Self.now)
    #expect(document.format == .spiffeBundle)
    #expect(document.trustBundle.roots == roots)
  }

  @Test func aByteOrderMarkIsSkipped() throws {
    let root = try Self.root()
    let byteOrderMark = Data([0xEF, 0xBB, 0xBF])
    let spiffe = try BundleDocument(
      parsing: byteOrderMark + (try Self.spiffeBundle([try Self.x509SVIDKey(root)])), now: Self.now)
    #expect(spiffe.format == .spiffeBundle)
    #expect(spiffe.trustBundle.roots == [root])
    let pem = try BundleDocument(parsing: byteOrderMark + (try Self.pem([root])), now: Self.now)
    #expect(pem.trustBundle.roots == [root])
  }

  @Test func aSPIFFEBundleWithOnlyJWTKeysIsEmpty() throws {
    #expect(Self.reason(of: try Self.spiffeBundle([Self.jwtSVIDKey])) == .empty)
    #expect(Self.reason(of: try Self.spiffeBundle([])) == .empty)
  }

  @Test(arguments: ["", " \n\t\r\n"])
  func aFileWithNothingInItIsEmpty(text: String) {
    #expect(Self.reason(of: Data(text.utf8)) == .empty)
  }

  @Test(arguments: [
    ("SECRET-MARKER is not a bundle", "no PEM block and is not JSON"),
    ("{SECRET-MARKER", "not valid JSON"),
    (#"{"keys": "SECRET-MARKER"}"#, ".keys is not an array"),
    (#"{"SECRET-MARKER": []}"#, #""keys" is missing"#),
    (#"{"keys": [{"use": 5}]}"#, ".keys[0].use is not a string"),
    (#"{"keys": [{"use": "x509-svid", "x5c": ["SECRET-MARKER"]}]}"#, "x5c of key 0 of the SPIFFE bundle is not base64"),
    (
      #"{"keys": [{"use": "x509-svid", "x5c": ["U0VDUkVULU1BUktFUg=="]}]}"#,
      "key 0 of the SPIFFE bundle is not an X.509"
    ),
    (
      #"{"keys": [{"use": "jwt-svid"}, {"use": "x509-svid"}]}"#, "key 1 of the SPIFFE bundle is an x509-svid key with 0"
    ),
    (#"{"keys": [{"use": "x509-svid", "x5c": ["MA==", "MA=="]}]}"#, "with 2 certificates in x5c"),
    ("-----BEGIN CERTIFICATE-----\nSECRET-MARKER\n", "a PEM block is malformed"),
    ("-----BEGIN CERTIFICATE-----\nU0VDUkVULU1BUktFUg==\n-----END CERTIFICATE-----\n", "PEM block 1 is not an X.509"),
    ("-----BEGIN X509 CRL-----\nU0VDUkVULU1BUktFUg==\n-----END X509 CRL-----\n", #"block 1 is a "X509 CRL""#),
  ])
  func garbageIsUnparsableAndNotQuoted(text: String, saying: String) {
    #expect {
      try BundleDocument(parsing: Data(text.utf8), now: Self.now)
    } throws: { error in
      guard let error = error as? BundleDocumentError else { return false }
      return error.reason == .unparsable && error.message.contains(saying)
        && !error.description.contains("SECRET-MARKER") && !error.description.contains("U0VDUkVU")
    }
  }

  @Test func aPrivateKeyInABundleFileIsRefusedWithoutQuotingIt() throws {
    let key = P256.Signing.PrivateKey().pemRepresentation
    let body = key.split(separator: "\n").dropFirst().first.map(String.init) ?? ""
    #expect {
      try BundleDocument(parsing: Data(key.utf8), now: Self.now)
    } throws: { error in
      guard let error = error as? BundleDocumentError else { return false }
      return error.reason == .unparsable && error.message.contains("is a private key") && !error.message.contains(body)
    }
  }

  @Test func bytesThatAreNotTextAreUnparsable() {
    #expect(Self.reason(of: Data([0x30, 0x82, 0xFF, 0xFE, 0x00, 0xC3])) == .unparsable)
  }

  @Test func aPrivateKeyInTheFileIsCalledOut() throws {
    let key = try WorkloadKeyType.ecdsaP256.generate()
    let data = try Self.pem([try Self.root()]) + Data(key.pkcs8PEM.utf8)
    #expect {
      try BundleDocument(parsing: data, now: Self.now)
    } throws: { error in
      "\(error)".contains("block 2 is a private key") && !"\(error)".contains(key.pkcs8PEM.split(separator: "\n")[1])
    }
  }

  @Test func aLeafAloneIsNoCACertificate() throws {
    let leaf = try Fixtures.issue().certifiedKey.leaf
    #expect(Self.reason(of: try Self.pem([leaf])) == .noCACertificate)
    let x509Key = try Self.x509SVIDKey(leaf)
    #expect(Self.reason(of: try Self.spiffeBundle([x509Key])) == .noCACertificate)
  }

  @Test func onlyExpiredRootsAreAllExpired() throws {
    let expired = [
      try Self.root(from: Self.now.addingTimeInterval(-10 * Self.day), days: 1),
      try Self.root(from: Self.now.addingTimeInterval(-5 * Self.day), days: 1),
    ]
    #expect {
      try BundleDocument(parsing: try Self.pem(expired), now: Self.now)
    } throws: { error in
      (error as? BundleDocumentError)?.reason == .allExpired
        && "\(error)".contains(expired[1].notValidAfter.formatted(.iso8601))
    }
  }

  @Test func expiredRootsAndLeavesAmongValidRootsAreDropped() throws {
    let expired = try Self.root(from: Self.now.addingTimeInterval(-10 * Self.day), days: 1)
    let valid = try Self.root()
    let notYetValid = try Self.root(from: Self.now.addingTimeInterval(Self.day))
    let leaf = try Fixtures.issue().certifiedKey.leaf
    let document = try BundleDocument(
      parsing: try Self.pem([expired, leaf, valid, notYetValid]), now: Self.now)
    #expect(document.trustBundle.roots == [valid, notYetValid])
    #expect(document.droppedExpired == 1)
    #expect(document.skippedNotCA == 1)
  }

  @Test func aRootIsValidUpToItsNotAfterInclusive() throws {
    let root = try Self.root(days: 1)
    #expect(try BundleDocument(parsing: try Self.pem([root]), now: root.notValidAfter).trustBundle.roots == [root])
    #expect(Self.reason(of: try Self.pem([root])) == nil)
    #expect {
      try BundleDocument(parsing: try Self.pem([root]), now: root.notValidAfter.addingTimeInterval(1))
    } throws: { error in
      (error as? BundleDocumentError)?.reason == .allExpired
    }
  }

  @Test func aFileOverOneMebibyteIsTooLargeBeforeItIsParsed() throws {
    let limit = BundleDocument.maximumSize
    #expect(limit == 1_048_576)
    // Valid roots after the limit do not matter: the size alone decides.
    let bundle = try Self.pem([try Self.root()])
    let padding = Data(repeating: UInt8(ascii: " "), count: limit + 1 - bundle.count)
    #expect(Self.reason(of: padding + bundle) == .tooLarge)
    #expect(Self.reason(of: padding.dropFirst() + bundle) == nil)
    #expect(Self.reason(of: Data(repeating: UInt8(ascii: "{"), count: limit + 1)) == .tooLarge)
    // At the limit the file is read.
    #expect(Self.reason(of: Data(repeating: UInt8(ascii: " "), count: limit)) == .empty)
  }

  @Test func theReasonsAreAClosedSetOfStableLabels() {
    #expect(
      BundleDocumentError.Reason.allCases.map(\.rawValue).sorted()
        == ["all_expired", "empty", "no_ca_certificate", "too_large", "unparsable"]
    )
  }
}
