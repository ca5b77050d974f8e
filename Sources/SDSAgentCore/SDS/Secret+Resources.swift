import EnvoySDSProtos
import Foundation
import SwiftProtobuf

extension Envoy_Extensions_TransportSockets_Tls_V3_Secret {
  /// The SDS secret for `requested`, or `nil` if it is not available in `served`.
  init?(_ requested: RequestedSecret, from served: ServedSecrets) {
    self.init()
    self.name = requested.name
    switch requested.resource {
    case .tlsCertificate:
      guard let certificate = served.tlsCertificate else { return nil }
      self.tlsCertificate = certificate
    case .onDemand(let name):
      guard let entry = served.onDemand[name] else { return nil }
      self.tlsCertificate = entry.certificate.message
    case .jwtSVID(let audience):
      guard let token = served.jwtSVIDs[audience] else { return nil }
      self.genericSecret = Envoy_Extensions_TransportSockets_Tls_V3_GenericSecret(bearer: token.svid)
    case .refused:
      return nil
    case .sessionTicketKeys(let name):
      guard let entry = served.sessionTicketKeys[name] else { return nil }
      self.sessionTicketKeys = Envoy_Extensions_TransportSockets_Tls_V3_TlsSessionTicketKeys(entry.keys)
    case .file(let name):
      guard let content = served.files[name]?.content else { return nil }
      if let certificate = content.tlsCertificate {
        self.tlsCertificate = certificate
      } else if let context = content.validationContext {
        self.validationContext = context
      } else if let generic = content.genericSecret {
        self.genericSecret = generic
      }
    case .validationContext, .trustDomain, .allTrustDomains:
      guard let context = served.trust?.context(for: requested.resource) else { return nil }
      self.validationContext = context
    }
  }
}

extension Envoy_Service_Discovery_V3_DiscoveryResponse {
  /// The response `plan` describes, with the secrets from `served`, encoded once per revision
  /// in `cache`.
  init(_ plan: SDSResponsePlan, from served: ServedSecrets, cache: SecretCache) throws {
    self.init()
    self.versionInfo = plan.versionInfo
    self.nonce = plan.nonce
    self.typeURL = SecretResource.typeURL
    self.resources = try plan.resources.compactMap { resource in
      if case .refused(let name) = resource.resource {
        // No body and a short TTL: Envoy drops the name when the TTL passes, failing the handshake.
        var heartbeat = Envoy_Service_Discovery_V3_Resource()
        heartbeat.name = name
        heartbeat.ttl = Google_Protobuf_Duration(seconds: 1)
        return try Google_Protobuf_Any(message: heartbeat)
      }
      return try Google_Protobuf_Any(resource, from: served, cache: cache)
    }
  }
}

extension Google_Protobuf_Any {
  /// The secret `requested` names, serialized, or nil if `served` does not have it.
  init?(_ requested: RequestedSecret, from served: ServedSecrets, cache: SecretCache) throws {
    do {
      self = try cache.encoded(requested, revision: served.revision(of: requested.resource)) {
        guard let secret = Envoy_Extensions_TransportSockets_Tls_V3_Secret(requested, from: served) else {
          throw SecretUnavailable()
        }
        var packed = Google_Protobuf_Any()
        packed.typeURL = SecretResource.typeURL
        packed.value = try secret.serializedData()
        return packed
      }
    } catch is SecretUnavailable {
      return nil
    }
  }
}

extension SDSRequest {
  package init(_ request: Envoy_Service_Discovery_V3_DiscoveryRequest) {
    self.init(
      versionInfo: request.versionInfo,
      resourceNames: request.resourceNames,
      typeURL: request.typeURL,
      responseNonce: request.responseNonce,
      errorDetail: request.hasErrorDetail
        ? ErrorDetail(code: request.errorDetail.code, message: request.errorDetail.message) : nil,
      nodeID: request.hasNode ? request.node.id : nil,
      disablesSPIFFEValidator: request.node.disablesSPIFFEValidator
    )
  }
}

extension Envoy_Config_Core_V3_Node {
  /// The node's metadata sets `disable_spiffe_cert_validation: true` (SPIRE's key).
  var disablesSPIFFEValidator: Bool {
    switch self.metadata.fields["disable_spiffe_cert_validation"]?.kind {
    case .boolValue(let value): return value
    case .stringValue(let value): return value.lowercased() == "true"
    default: return false
    }
  }
}

/// The secret a stream asked for is not served now: it is left out of the response, and no
/// encoding is kept for it.
private struct SecretUnavailable: AgentFailure {
  enum Code: String, Sendable {
    case unavailable
  }

  var code: Code { .unavailable }
  var message: String { "the secret is not served now" }
  var description: String { self.message }
}
