/// The parts of a `DeltaDiscoveryRequest` that decide what the agent does.
package struct DeltaRequest: Sendable, Equatable {
  package var typeURL: String
  package var subscribe: [String]
  package var unsubscribe: [String]
  /// On the first request of a stream: the resources the client already has, by version.
  package var initialVersions: [String: String]
  package var responseNonce: String
  /// Set on a NACK: why the client rejected the response named by `responseNonce`.
  package var errorDetail: SDSRequest.ErrorDetail?
  package var nodeID: String?
  /// See `SDSRequest.disablesSPIFFEValidator`.
  package var disablesSPIFFEValidator: Bool
  /// On-demand names the agent refused to mint (see `SDSRequest.refused`).
  package var refused: Set<String> = []

  package init(
    typeURL: String = SecretResource.typeURL,
    subscribe: [String] = [],
    unsubscribe: [String] = [],
    initialVersions: [String: String] = [:],
    responseNonce: String = "",
    errorDetail: SDSRequest.ErrorDetail? = nil,
    nodeID: String? = nil,
    disablesSPIFFEValidator: Bool = false
  ) {
    self.typeURL = typeURL
    self.subscribe = subscribe
    self.unsubscribe = unsubscribe
    self.initialVersions = initialVersions
    self.responseNonce = responseNonce
    self.errorDetail = errorDetail
    self.nodeID = nodeID
    self.disablesSPIFFEValidator = disablesSPIFFEValidator
  }
}

/// A delta response the stream must send: these resources at these versions, these names
/// removed, under this nonce.
package struct DeltaResponsePlan: Sendable, Equatable {
  package struct Item: Sendable, Equatable {
    package var secret: RequestedSecret
    package var version: String
  }

  package var resources: [Item]
  package var removed: [String]
  package var nonce: String
  /// The caller's trust bundle, if the response carries it.
  package var trustBundle: TrustBundle?
}
