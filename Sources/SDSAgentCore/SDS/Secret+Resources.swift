import EnvoySDSProtos
import Foundation
import SwiftProtobuf

extension Envoy_Extensions_TransportSockets_Tls_V3_Secret {
  /// The SDS secret for `resource`, or `nil` if it is not available in `served`.
  init?(_ resource: SecretResource, from served: ServedSecrets) throws {
    self.init()
    self.name = resource.name
    switch resource {
    case .tlsCertificate:
      guard let svid = served.svid else { return nil }
      var certificate = Envoy_Extensions_TransportSockets_Tls_V3_TlsCertificate()
      certificate.certificateChain.inlineBytes = Data(try svid.chain.map { try $0.pemString() + "\n" }.joined().utf8)
      certificate.privateKey.inlineBytes = Data(svid.privateKey.pkcs8PEM.utf8)
      self.tlsCertificate = certificate
    case .validationContext:
      guard let bundle = served.trustBundle else { return nil }
      var context = Envoy_Extensions_TransportSockets_Tls_V3_CertificateValidationContext()
      context.trustedCa.inlineBytes = Data(try bundle.pemString().utf8)
      self.validationContext = context
    }
  }
}

extension Envoy_Service_Discovery_V3_DiscoveryResponse {
  /// The response `plan` describes, with the secrets from `served`.
  init(_ plan: SDSResponsePlan, from served: ServedSecrets) throws {
    self.init()
    self.versionInfo = plan.versionInfo
    self.nonce = plan.nonce
    self.typeURL = SecretResource.typeURL
    self.resources = try plan.resources.compactMap { resource in
      guard let secret = try Envoy_Extensions_TransportSockets_Tls_V3_Secret(resource, from: served) else {
        return nil
      }
      return try Google_Protobuf_Any(message: secret)
    }
  }
}

extension SDSRequest {
  init(_ request: Envoy_Service_Discovery_V3_DiscoveryRequest) {
    self.init(
      versionInfo: request.versionInfo,
      resourceNames: request.resourceNames,
      typeURL: request.typeURL,
      responseNonce: request.responseNonce,
      errorDetail: request.hasErrorDetail
        ? ErrorDetail(code: request.errorDetail.code, message: request.errorDetail.message) : nil,
      nodeID: request.hasNode ? request.node.id : nil
    )
  }
}
