/// The parts of a `DeltaDiscoveryRequest` that decide what the agent does.
public struct DeltaRequest: Sendable, Equatable {
  public var typeURL: String
  public var subscribe: [String]
  public var unsubscribe: [String]
  /// On the first request of a stream: the resources the client already has, by version.
  public var initialVersions: [String: String]
  public var responseNonce: String
  /// Set on a NACK: why the client rejected the response named by `responseNonce`.
  public var errorDetail: SDSRequest.ErrorDetail?
  public var nodeID: String?
  /// See `SDSRequest.disablesSPIFFEValidator`.
  public var disablesSPIFFEValidator: Bool
  /// On-demand names the agent refused to mint (see `SDSRequest.refused`).
  public var refused: Set<String> = []

  public init(
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
public struct DeltaResponsePlan: Sendable, Equatable {
  public struct Item: Sendable, Equatable {
    public var secret: RequestedSecret
    public var version: String
  }

  public var resources: [Item]
  public var removed: [String]
  public var nonce: String
  /// The caller's trust bundle, if the response carries it.
  public var trustBundle: TrustBundle?
}
