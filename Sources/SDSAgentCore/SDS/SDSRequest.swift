import GRPCCore

/// The parts of an SotW `DiscoveryRequest` that decide what the agent does.
public struct SDSRequest: Sendable, Equatable {
  public struct ErrorDetail: Sendable, Equatable {
    public var code: Int32
    public var message: String

    public init(code: Int32, message: String) {
      self.code = code
      self.message = message
    }
  }

  public var versionInfo: String
  public var resourceNames: [String]
  public var typeURL: String
  public var responseNonce: String
  /// Set on a NACK: why Envoy rejected the response named by `responseNonce`.
  public var errorDetail: ErrorDetail?
  public var nodeID: String?

  public init(
    versionInfo: String = "",
    resourceNames: [String],
    typeURL: String = SecretResource.typeURL,
    responseNonce: String = "",
    errorDetail: ErrorDetail? = nil,
    nodeID: String? = nil
  ) {
    self.versionInfo = versionInfo
    self.resourceNames = resourceNames
    self.typeURL = typeURL
    self.responseNonce = responseNonce
    self.errorDetail = errorDetail
    self.nodeID = nodeID
  }
}

/// A response the stream must send: these resources, under this version and nonce.
public struct SDSResponsePlan: Sendable, Equatable {
  public var resources: [RequestedSecret]
  public var versionInfo: String
  public var nonce: String
}

/// A request the agent refuses; the stream ends with this error.
public struct SDSRequestError: Error, Sendable, Equatable, CustomStringConvertible {
  public enum Code: Sendable, Equatable {
    case unknownResource
    case unsupportedType
    case invalidName
    /// The name is another workload's: PERMISSION_DENIED.
    case forbiddenName
  }

  public let code: Code
  public let message: String

  public var description: String { self.message }

  static func unknownResources(_ names: [String], known: [String]) -> Self {
    let asked = names.map { "\"\($0)\"" }.joined(separator: ", ")
    let known = known.map { "\"\($0)\"" }.joined(separator: ", ")
    return Self(
      code: .unknownResource,
      message: "unknown resource name(s) \(asked); this agent serves \(known)"
    )
  }

  static func forbiddenNames(_ names: [String], caller: SPIFFEID) -> Self {
    Self(
      code: .forbiddenName,
      message:
        "\(caller) may not ask for \(names.map { "\"\($0)\"" }.joined(separator: ", ")): a caller gets only its own secrets"
    )
  }
}

extension SDSRequestError: RPCErrorConvertible {
  public var rpcErrorCode: RPCError.Code {
    switch self.code {
    case .unknownResource: return .notFound
    case .unsupportedType, .invalidName: return .invalidArgument
    case .forbiddenName: return .permissionDenied
    }
  }

  public var rpcErrorMessage: String { self.message }
}
