import Crypto
import Foundation
import SDSAgentCore
import Testing
import X509

/// CRLs as openssl reads them: the signature verifies against the issuer, the fields say what
/// RFC 5280 asks, and `openssl verify -crl_check` refuses a revoked leaf and accepts another.
@Suite struct CertificateRevocationListTests {
  let now = Date()
  let identity = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend")

  func issue(_ ca: CAMaterial) throws -> IssuedSVID {
    try LocalCA(material: ca).certify(
      identity: self.identity, privateKey: try WorkloadKeyType.ecdsaP256.generate(), ttl: .seconds(3600), now: self.now)
  }

  func crl(_ ca: CAMaterial, number: Int = 7, revoking leaves: [Certificate], reason: RevocationReason = .keyCompromise)
    throws -> CertificateRevocationList
  {
    try CertificateRevocationList(
      issuer: ca.certificate, issuerKey: ca.privateKey, number: number,
      entries: leaves.map {
        RevokedCertificate(
          serial: CertificateSerial($0.serialNumber), revokedAt: self.now, reason: reason, notAfter: $0.notValidAfter)
      },
      thisUpdate: self.now.addingTimeInterval(-5), nextUpdate: self.now.addingTimeInterval(4 * 3600))
  }

  @Test func opensslVerifiesTheSignatureAndReadsEveryField() throws {
    let ca = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now)
    let leaf = try self.issue(ca).certifiedKey.leaf
    let list = try self.crl(ca, number: 42, revoking: [leaf])
    let files = try OpenSSLFiles()
    let crlFile = try files.write("crl.pem", list.pemString)
    let caFile = try files.write("ca.pem", try ca.certificate.serializeAsPEM().pemString)
    let result = try OpenSSL.run(["crl", "-in", crlFile, "-CAfile", caFile, "-verify", "-noout", "-text"])
    #expect(result.status == 0, "\(result.output)")
    #expect(result.output.contains("verify OK"))
    #expect(result.output.contains("Version 2"))
    #expect(result.output.contains("X509v3 CRL Number: \n                42"))
    #expect(result.output.contains("X509v3 Authority Key Identifier"))
    #expect(result.output.contains("Serial Number: \(CertificateSerial(leaf.serialNumber).description.uppercased())"))
    #expect(result.output.contains("Key Compromise"))
    #expect(result.output.contains("Next Update:"))
  }

  @Test func anotherKeyDoesNotVerify() throws {
    let ca = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now)
    let impostor = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now)
    let list = try self.crl(impostor, revoking: [])
    let files = try OpenSSLFiles()
    let result = try OpenSSL.run([
      "crl", "-in", try files.write("crl.pem", list.pemString),
      "-CAfile", try files.write("ca.pem", try ca.certificate.serializeAsPEM().pemString), "-verify", "-noout",
    ])
    #expect(result.status != 0 || !result.output.contains("verify OK"), "\(result.output)")
  }

  @Test func aRevokedLeafIsRefusedAndAnotherAccepted() throws {
    let ca = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now)
    let revoked = try self.issue(ca).certifiedKey.leaf
    let kept = try self.issue(ca).certifiedKey.leaf
    let list = try self.crl(ca, revoking: [revoked])
    let files = try OpenSSLFiles()
    let caFile = try files.write("ca.pem", try ca.certificate.serializeAsPEM().pemString)
    let crlFile = try files.write("crl.pem", list.pemString)
    for (leaf, expectRevoked) in [(revoked, true), (kept, false)] {
      let leafFile = try files.write("leaf.pem", try leaf.serializeAsPEM().pemString)
      let result = try OpenSSL.run(["verify", "-crl_check", "-CAfile", caFile, "-CRLfile", crlFile, leafFile])
      if expectRevoked {
        #expect(result.status != 0 && result.output.contains("certificate revoked"), "\(result.output)")
      } else {
        #expect(result.status == 0, "\(result.output)")
      }
    }
  }

  @Test func anRSAIssuerSignsACRLOpensslVerifies() throws {
    let key = try WorkloadKeyType.rsa2048.generate().key
    let name = try DistinguishedName { CommonName("rsa test CA") }
    let certificate = try Certificate(
      version: .v3, serialNumber: .init(), publicKey: key.publicKey, notValidBefore: self.now.addingTimeInterval(-60),
      notValidAfter: self.now.addingTimeInterval(86400), issuer: name, subject: name,
      extensions: try Certificate.Extensions {
        Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
        Critical(KeyUsage(keyCertSign: true, cRLSign: true))
      }, issuerPrivateKey: key)
    let ca = try CAMaterial(certificate: certificate, privateKey: key, chain: [])
    let list = try self.crl(ca, revoking: [try self.issue(ca).certifiedKey.leaf], reason: .superseded)
    let files = try OpenSSLFiles()
    let result = try OpenSSL.run([
      "crl", "-in", try files.write("crl.pem", list.pemString),
      "-CAfile", try files.write("ca.pem", try certificate.serializeAsPEM().pemString), "-verify", "-noout", "-text",
    ])
    #expect(result.status == 0 && result.output.contains("verify OK"), "\(result.output)")
    #expect(result.output.contains("Superseded"))
    #expect(result.output.contains("sha256WithRSAEncryption"))
  }

  @Test func entriesOfExpiredCertificatesAreLeftOut() throws {
    let ca = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now)
    let live = RevokedCertificate(
      serial: CertificateSerial(hex: "01")!, revokedAt: self.now, reason: .unspecified,
      notAfter: self.now.addingTimeInterval(60))
    let expired = RevokedCertificate(
      serial: CertificateSerial(hex: "02")!, revokedAt: self.now.addingTimeInterval(-7200), reason: .unspecified,
      notAfter: self.now.addingTimeInterval(-3600))
    let list = try CertificateRevocationList(
      issuer: ca.certificate, issuerKey: ca.privateKey, number: 1, entries: [expired, live],
      thisUpdate: self.now, nextUpdate: self.now.addingTimeInterval(3600))
    #expect(list.entries.map(\.serial) == [live.serial])
  }

  @Test func whatIsSignedHereReadsBackAndVerifies() throws {
    let ca = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now)
    let other = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now)
    let leaf = try self.issue(ca).certifiedKey.leaf
    let list = try self.crl(ca, number: 300, revoking: [leaf])
    let read = try CertificateRevocationList(pemEncoded: list.pemString)
    #expect(read.number == 300)
    #expect(read.issuer == ca.certificate.subject)
    #expect(read.entries == list.entries)
    #expect(read.entries.first?.reason == .keyCompromise)
    #expect(read.thisUpdate == list.thisUpdate && read.nextUpdate == list.nextUpdate)
    #expect(read.revokes(CertificateSerial(leaf.serialNumber)))
    #expect(read.isSigned(by: ca.certificate))
    #expect(!read.isSigned(by: other.certificate))
  }

  @Test func aCRLOpensslSignedIsReadAndVerified() throws {
    let files = try OpenSSLFiles()
    let dir = files.directory.path
    try "1000\n".write(toFile: dir + "/crlnumber", atomically: true, encoding: .utf8)
    let config = try files.write(
      "ca.cnf",
      """
      [ca]
      default_ca = test
      [test]
      database = \(dir)/index.txt
      crlnumber = \(dir)/crlnumber
      default_md = sha256
      default_crl_hours = 4
      [ext]
      basicConstraints = critical,CA:true
      keyUsage = critical,keyCertSign,cRLSign
      """)
    let made = try OpenSSL.run([
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", dir + "/ca.key",
      "-out", dir + "/ca.pem", "-subj", "/CN=openssl CA", "-days", "1", "-config", config, "-extensions", "ext",
    ])
    #expect(made.status == 0, "\(made.output)")
    try "R\t301231000000Z\t250101000000Z,keyCompromise\t0A1B\tunknown\t/CN=leaf\n".write(
      toFile: dir + "/index.txt", atomically: true, encoding: .utf8)
    let signed = try OpenSSL.run([
      "ca", "-gencrl", "-config", config, "-keyfile", dir + "/ca.key", "-cert", dir + "/ca.pem", "-out",
      dir + "/crl.pem",
    ])
    #expect(signed.status == 0, "\(signed.output)")
    let read = try CertificateRevocationList(pemEncoded: try String(contentsOfFile: dir + "/crl.pem", encoding: .utf8))
    let issuer = try Certificate(pemEncoded: try String(contentsOfFile: dir + "/ca.pem", encoding: .utf8))
    #expect(read.number == 0x1000)
    #expect(read.entries.map(\.serial) == [CertificateSerial(hex: "0a1b")!])
    #expect(read.entries.first?.reason == .keyCompromise)
    #expect(read.isSigned(by: issuer))
  }

  @Test(arguments: [[UInt8](), [0x30, 0x00], [0x30, 0x03, 0x02, 0x01, 0x01], Array(repeating: 0x30, count: 64)])
  func garbageIsAnErrorNotACrash(bytes: [UInt8]) {
    #expect {
      try CertificateRevocationList(derEncoded: bytes)
    } throws: { error in
      (error as? CRLError)?.code == .unparsable
    }
  }

  @Test func aKeyThatIsNotTheIssuersIsRefused() throws {
    let ca = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now)
    let other = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now)
    #expect {
      try CertificateRevocationList(
        issuer: ca.certificate, issuerKey: other.privateKey, number: 1, entries: [], thisUpdate: self.now,
        nextUpdate: self.now.addingTimeInterval(60))
    } throws: { error in
      (error as? CRLError)?.code == .signing
    }
  }
}

/// A temporary folder for openssl's input files.
struct OpenSSLFiles {
  let directory: URL

  init() throws {
    self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("crl-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
  }

  func write(_ name: String, _ text: String) throws -> String {
    let url = self.directory.appendingPathComponent(name)
    try text.write(to: url, atomically: true, encoding: .utf8)
    return url.path
  }
}

/// Runs the openssl command-line tool, returning its exit status and merged output.
enum OpenSSL {
  static func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["openssl"] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let output = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: output, as: UTF8.self))
  }
}
