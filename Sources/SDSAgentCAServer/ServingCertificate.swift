import Crypto
import Foundation
import NIOCertificateReloading
import NIOSSL
import SDSAgent
import SDSAgentCore
import SwiftASN1
import Synchronization
import X509

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// The TLS certificate `ca serve` presents: minted in memory by its CA's signing root, and minted
/// anew when another root signs (a rotation's switch). NIOSSL asks for it at every handshake (a
/// `CertificateReloader` is its per-handshake context callback), so a new connection gets the
/// current certificate without a restart of the listener, and an open connection keeps the one
/// it began with.
final class ServingCertificate: CertificateReloader {
  /// The certificate's names: DNS names and IP addresses.
  let names: [String]
  private let current: Mutex<(chain: [Certificate], override: NIOSSLContextConfigurationOverride)>

  init(signedBy material: CAMaterial, names: [String], now: Date = Date()) throws {
    self.names = names
    self.current = Mutex(try Self.mint(signedBy: material, names: names, now: now))
  }

  /// The chain presented now, the leaf first.
  var chain: [Certificate] { self.current.withLock { $0.chain } }

  var sslContextConfigurationOverride: NIOSSLContextConfigurationOverride {
    self.current.withLock { $0.override }
  }

  /// Presents a certificate signed by `material` to every connection from now on.
  func renew(signedBy material: CAMaterial, now: Date = Date()) throws {
    let minted = try Self.mint(signedBy: material, names: self.names, now: now)
    self.current.withLock { $0 = minted }
  }

  private static func mint(
    signedBy material: CAMaterial,
    names: [String],
    now: Date
  ) throws -> (chain: [Certificate], override: NIOSSLContextConfigurationOverride) {
    let (chain, key) = try self.certificate(signedBy: material, names: names, now: now)
    var override = NIOSSLContextConfigurationOverride()
    override.certificateChain = try chain.map { certificate in
      var serializer = DER.Serializer()
      try serializer.serialize(certificate)
      return .certificate(try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der))
    }
    override.privateKey = .privateKey(
      try NIOSSLPrivateKey(bytes: Array(try key.serializeAsPEM().pemString.utf8), format: .pem))
    return (chain, override)
  }

  static func certificate(
    signedBy material: CAMaterial,
    names: [String],
    now: Date
  ) throws -> ([Certificate], Certificate.PrivateKey) {
    let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
    var generalNames: [GeneralName] = []
    for name in Set(names).sorted() where !name.isEmpty {
      if let bytes = Self.ipAddressBytes(name) {
        generalNames.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes))))
      } else if name != "0.0.0.0", name != "::" {
        generalNames.append(.dnsName(name))
      }
    }
    let leaf = try Certificate(
      version: .v3,
      serialNumber: Certificate.SerialNumber(),
      publicKey: key.publicKey,
      notValidBefore: now.addingTimeInterval(-60),
      notValidAfter: min(now.addingTimeInterval(365 * 86400), material.certificate.notValidAfter),
      issuer: material.certificate.subject,
      subject: try DistinguishedName { CommonName("sds-agent ca serve") },
      extensions: try Certificate.Extensions {
        Critical(BasicConstraints.notCertificateAuthority)
        Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
        try ExtendedKeyUsage([.serverAuth])
        SubjectAlternativeNames(generalNames)
      },
      issuerPrivateKey: material.privateKey
    )
    return ([leaf] + material.chainAfterLeaf, key)
  }

  static func ipAddressBytes(_ text: String) -> [UInt8]? {
    var v4 = in_addr()
    if inet_pton(AF_INET, text, &v4) == 1 {
      return withUnsafeBytes(of: &v4) { Array($0) }
    }
    var v6 = in6_addr()
    if inet_pton(AF_INET6, text, &v6) == 1 {
      return withUnsafeBytes(of: &v6) { Array($0) }
    }
    return nil
  }
}
