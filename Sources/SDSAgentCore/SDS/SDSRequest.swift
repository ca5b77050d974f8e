import GRPCCore

/// The parts of an SotW `DiscoveryRequest` that decide what the agent does.
package struct SDSRequest: Sendable, Equatable {
  package struct ErrorDetail: Sendable, Equatable {
    package var code: Int32
    package var message: String

    package init(code: Int32, message: String) {
      self.code = code
      self.message = message
    }
  }

  package var versionInfo: String
  package var resourceNames: [String]
  package var typeURL: String
  package var responseNonce: String
  /// Set on a NACK: why Envoy rejected the response named by `responseNonce`.
  package var errorDetail: ErrorDetail?
  package var nodeID: String?
  /// The node's metadata sets `disable_spiffe_cert_validation: true` (SPIRE's key): bundles are
  /// served as plain `trusted_ca`.
  package var disablesSPIFFEValidator: Bool
  /// On-demand names the agent refused to mint: not the request's, the admission's decision,
  /// recorded here so that the stream's state stays a pure function of what it was given.
  package var refused: Set<String> = []

  package init(
    versionInfo: String = "",
    resourceNames: [String],
    typeURL: String = SecretResource.typeURL,
    responseNonce: String = "",
    errorDetail: ErrorDetail? = nil,
    nodeID: String? = nil,
    disablesSPIFFEValidator: Bool = false
  ) {
    self.versionInfo = versionInfo
    self.resourceNames = resourceNames
    self.typeURL = typeURL
    self.responseNonce = responseNonce
    self.errorDetail = errorDetail
    self.nodeID = nodeID
    self.disablesSPIFFEValidator = disablesSPIFFEValidator
  }

  /// The most resource names one request may carry; more is INVALID_ARGUMENT.
  package static let maximumResourceNames = 128
  /// The longest resource name in bytes, the SPIFFE ID limit; longer is INVALID_ARGUMENT.
  package static let maximumNameLength = SPIFFEID.maximumLength
}

/// A response the stream must send: these resources, under this version and nonce.
package struct SDSResponsePlan: Sendable, Equatable {
  package var resources: [RequestedSecret]
  /// The highest revision among `resources`: with them, it names the response's content.
  package var revision: UInt64
  package var nonce: String

  /// The response's `version_info`.
  package var versionInfo: String { String(self.revision) }
}

/// A request the agent refuses; the stream ends with this error.
package struct SDSRequestError: AgentFailure, Equatable {
  package enum Code: String, Sendable, Equatable {
    case unknownResource
    case unsupportedType
    /// A name longer than `SDSRequest.maximumNameLength` bytes.
    case invalidName
    /// More than `SDSRequest.maximumResourceNames` names in one request.
    case tooManyNames
    /// The name is another workload's: PERMISSION_DENIED.
    case forbiddenName
    /// `ALL` with the SPIFFE certificate validator off.
    case validatorDisabled
    /// The caller holds as many `file-cert:`/`file-root:` names as it may: RESOURCE_EXHAUSTED.
    case tooManyFileNames
    /// The caller's streams hold as many `jwt-svid:` audiences as they may: RESOURCE_EXHAUSTED.
    case tooManyAudiences
  }

  package let code: Code
  package let message: String

  package var description: String { self.message }

  static func unknownResources(_ names: [String], known: [String]) -> Self {
    Self(
      code: .unknownResource,
      message: "unknown resource name(s) \(Self.quoted(names)); this agent serves \(Self.quoted(known))"
    )
  }

  static func forbiddenNames(_ names: [String], caller: SPIFFEID) -> Self {
    Self(
      code: .forbiddenName,
      message: "\(caller) may not ask for \(Self.quoted(names)): a caller gets only its own secrets"
    )
  }

  static let allNeedsSPIFFEValidator = Self(
    code: .validatorDisabled,
    message: "ALL is served only for Envoy's SPIFFE certificate validator, which is off for this stream "
      + "(--spiffe-validator=false or node metadata disable_spiffe_cert_validation); ask for ROOTCA or "
      + "spiffe://<trust-domain> instead"
  )

  static func tooManyNames(_ count: Int) -> Self {
    Self(
      code: .tooManyNames,
      message: "the request names \(count) resources; a request may name at most "
        + "\(SDSRequest.maximumResourceNames) (Envoy asks for one or two per stream)"
    )
  }

  static func fileSecretRefused(_ name: String, _ rule: String) -> Self {
    Self(code: .forbiddenName, message: "\(Self.quoted([name])) is refused: \(rule)")
  }

  static func tooManyFileNames(_ names: [String], caller: SPIFFEID, limit: Int) -> Self {
    Self(
      code: .tooManyFileNames,
      message: "\(caller) may not follow \(Self.quoted(names)): a caller follows at most \(limit) file-cert: and "
        + "file-root: names whose files exist (and \(limit) whose files do not); end streams that hold others"
    )
  }

  static func secretWithheld(_ names: [String], caller: SPIFFEID) -> Self {
    Self(
      code: .forbiddenName,
      message: "\(caller) may not have the secret(s) \(Self.quoted(names)): its callers list does not name it")
  }

  static func tooManySubscriptions(_ count: Int, limit: Int) -> Self {
    Self(
      code: .tooManyNames,
      message: "the stream would hold \(count) subscriptions; a stream may hold at most \(limit)"
    )
  }

  static func nameTooLong(_ name: String) -> Self {
    Self(
      code: .invalidName,
      message: "resource name \(Self.quoted([name])) is \(name.utf8.count) bytes; names are at most "
        + "\(SDSRequest.maximumNameLength) bytes, the length of the longest SPIFFE ID"
    )
  }

  static func unsupportedType(_ typeURL: String) -> Self {
    Self(
      code: .unsupportedType,
      message: "type_url \(Self.quoted([typeURL])) is not served here; use \"\(SecretResource.typeURL)\""
    )
  }

  /// Names from a request as a status message or a log line shows them: the first few, each
  /// cut short, and how many more there were.
  static func quoted(_ names: [String]) -> String {
    let shown = names.prefix(Self.namesShown).map { "\"\(BoundedText($0))\"" }.joined(separator: ", ")
    let more = names.count - Self.namesShown
    return more > 0 ? "\(shown) and \(more) more" : shown
  }

  static let namesShown = 4
}

extension SDSRequestError: RPCErrorConvertible {
  package var rpcErrorCode: RPCError.Code {
    switch self.code {
    case .unknownResource: return .notFound
    case .unsupportedType, .invalidName, .tooManyNames: return .invalidArgument
    case .forbiddenName: return .permissionDenied
    case .validatorDisabled: return .failedPrecondition
    case .tooManyFileNames, .tooManyAudiences: return .resourceExhausted
    }
  }

  package var rpcErrorMessage: String { self.message }
}
