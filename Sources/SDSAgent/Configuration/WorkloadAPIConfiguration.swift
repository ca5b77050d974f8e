import SDSAgentCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Where the SPIFFE Workload API is served: on the SDS socket unless turned off, and on a socket
/// of its own when one is named.
package struct WorkloadAPIConfiguration: Sendable, Equatable {
  /// Whether the SDS socket (and `socketPath`) serve `SpiffeWorkloadAPI`; if not, its methods
  /// answer UNIMPLEMENTED.
  package var enabled: Bool
  /// A second Unix socket that serves the Workload API only.
  package var socketPath: String?
  /// Permission bits of that socket file.
  package var socketMode: UInt32
  /// The group that owns that socket file, if not the agent's.
  package var socketGroup: gid_t?
  /// The lifetime of the JWT-SVIDs the agent signs.
  package var jwtSVIDTTL: Duration

  package init(
    enabled: Bool = true, socketPath: String? = nil, socketMode: UInt32 = 0o660, socketGroup: gid_t? = nil,
    jwtSVIDTTL: Duration = .seconds(300)
  ) {
    self.enabled = enabled
    self.socketPath = socketPath
    self.socketMode = socketMode
    self.socketGroup = socketGroup
    self.jwtSVIDTTL = jwtSVIDTTL
  }

  /// Refuses a socket that cannot serve, or that is the SDS socket itself.
  func validate(sdsSocketPath: String) throws(ConfigurationError) {
    guard let socketPath = self.socketPath else { return }
    guard self.enabled else {
      throw ConfigurationError(
        key: "workload-api-socket", value: socketPath, allowed: "a socket only while workload-api is true")
    }
    guard socketPath != sdsSocketPath else {
      throw ConfigurationError(
        key: "workload-api-socket", value: socketPath,
        allowed: "another path than the SDS socket's, which serves the Workload API already")
    }
    guard self.socketMode & ~0o777 == 0 else {
      throw ConfigurationError(
        key: "workload-api-socket-mode", value: String(self.socketMode, radix: 8),
        allowed: "octal permission bits such as 0660")
    }
  }

  /// The environment line a workload's SPIFFE library reads (`SPIFFE_ENDPOINT_SOCKET`).
  package static func endpointVariable(_ path: String) -> String {
    "SPIFFE_ENDPOINT_SOCKET=unix://" + path
  }

  /// A group's ID from its name or number; nil if there is no such group.
  static func groupID(_ text: String) -> gid_t? {
    if let number = gid_t(text) { return number }
    guard let entry = getgrnam(text) else { return nil }
    return entry.pointee.gr_gid
  }
}
