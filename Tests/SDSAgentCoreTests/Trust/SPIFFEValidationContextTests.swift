import EnvoySDSProtos
import Foundation
import SDSAgentCore
import SwiftASN1
import SwiftProtobuf
import Testing
import X509

@Suite struct SPIFFEValidationContextTests {
  typealias ValidationContext = Envoy_Extensions_TransportSockets_Tls_V3_CertificateValidationContext
  typealias ValidatorConfig = Envoy_Extensions_TransportSockets_Tls_V3_SPIFFECertValidatorConfig

  static func bundle(_ trustDomain: String, roots: Int = 1) throws -> TrustBundle {
    TrustBundle(
      roots: try (0..<roots).map { offset in
        try CAMaterial.generateRoot(trustDomain: trustDomain, now: Fixtures.now.addingTimeInterval(Double(offset)))
          .certificate
      })
  }

  @Test func encodesTheSPIFFEValidatorWithOneSortedEntryPerDomain() throws {
    let local = try TrustDomainName(parsing: "cluster.local")
    let zulu = try TrustDomainName(parsing: "spiffe://zulu.example")
    let alpha = try TrustDomainName(parsing: "alpha.example")
    let bundles = [
      zulu: try Self.bundle("zulu.example"), local: try Self.bundle("cluster.local", roots: 2),
      alpha: try Self.bundle("alpha.example"),
    ]

    let encoded = try SPIFFEValidationContext.certificateValidationContext(trustBundles: bundles).serializedData()
    let context = try ValidationContext(serializedBytes: encoded)

    #expect(!context.hasTrustedCa)
    #expect(context.customValidatorConfig.name == "envoy.tls.cert_validator.spiffe")
    #expect(
      context.customValidatorConfig.typedConfig.typeURL
        == "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.SPIFFECertValidatorConfig"
    )
    let config = try ValidatorConfig(unpackingAny: context.customValidatorConfig.typedConfig)
    #expect(config.trustDomains.map(\.name) == ["alpha.example", "cluster.local", "zulu.example"])
    #expect(!config.hasTrustBundles)
    for entry in config.trustDomains {
      guard case .inlineBytes(let pem) = entry.trustBundle.specifier else {
        Issue.record("the bundle of \(entry.name) is not inline bytes")
        continue
      }
      let roots = try PEMDocument.parseMultiple(pemString: String(decoding: pem, as: UTF8.self))
        .map(Certificate.init(pemDocument:))
      #expect(TrustBundle(roots: roots) == bundles[try TrustDomainName(parsing: entry.name)])
    }
  }

  @Test func theSameBundlesEncodeToTheSameBytes() throws {
    let names = try (0..<12).map { try TrustDomainName(parsing: "td\($0).example") }
    var forward: [TrustDomainName: TrustBundle] = [:]
    var backward: [TrustDomainName: TrustBundle] = [:]
    let bundles = try names.map { try Self.bundle($0.name) }
    for (name, bundle) in zip(names, bundles) { forward[name] = bundle }
    for (name, bundle) in zip(names, bundles).reversed() { backward[name] = bundle }

    let first = try SPIFFEValidationContext.certificateValidationContext(trustBundles: forward).serializedData()
    let second = try SPIFFEValidationContext.certificateValidationContext(trustBundles: backward).serializedData()
    #expect(first == second)
    let other = try SPIFFEValidationContext.certificateValidationContext(
      trustBundles: forward.merging([names[0]: try Self.bundle("td0.example")]) { $1 }
    ).serializedData()
    #expect(other != first)
  }

  @Test func theContextTravelsInASecret() throws {
    var secret = Envoy_Extensions_TransportSockets_Tls_V3_Secret()
    secret.name = "ROOTCA"
    secret.validationContext = try SPIFFEValidationContext.certificateValidationContext(
      trustBundles: [try TrustDomainName(parsing: "other.example"): try Self.bundle("other.example")])
    let decoded = try Envoy_Extensions_TransportSockets_Tls_V3_Secret(
      serializedBytes: try Google_Protobuf_Any(message: secret).value)
    #expect(decoded.validationContext.customValidatorConfig.name == SPIFFEValidationContext.validatorName)
    #expect(
      try ValidatorConfig(unpackingAny: decoded.validationContext.customValidatorConfig.typedConfig)
        .trustDomains.map(\.name) == ["other.example"])
  }
}
