import GRPCCore
import Logging
import NIOCore
import NIOHPACK
import SDSAgentCore

@testable import SDSAgent

/// A test-only gRPC service for the SDS socket's routing: `test.Echo/Echo` answers each request
/// with its bytes and ends when the client does. It requires `x-echo: on` (as the SPIFFE
/// Workload API requires its own header).
struct EchoSocketService: GRPCSocketService {
  static let path = "/test.Echo/Echo"

  var name: String { "test.Echo" }

  func serves(_ method: Substring) -> Bool { method == "Echo" }

  func admits(_ headers: HPACKHeaders, method: Substring) -> GRPCStatus? {
    headers.first(name: "x-echo") == "on" ? nil : GRPCStatus(code: .invalidArgument, message: "x-echo: on is required")
  }

  func open(_ method: Substring, lease: SecretLease) -> (any GRPCSocketCall)? {
    method == "Echo" ? Call(lease: lease) : nil
  }

  final class Call: GRPCSocketCall {
    let lease: SecretLease

    init(lease: SecretLease) { self.lease = lease }

    var followedCache: SecretCache? { nil }
    var incremental: Bool { false }

    func isAffected(by changes: SecretChanges) -> Bool { true }

    func handle(_ event: Event) throws(RPCError) -> Step {
      switch event {
      case .request(let message):
        return .send(GRPCMessageDeframer.frame(Array(message.readableBytesView), allocator: .init()))
      case .requestFailed(let error): throw error
      case .secretsChanged: return .wait
      case .requestsEnded: return .end
      }
    }

    func close() { self.lease.release() }
  }

  /// The SDS service of an agent that admits no caller, with this one: enough to route by.
  static var servicesWithSDS: GRPCServiceTable {
    struct NoCallers: SecretLeaseProvider {
      func lease(for evidence: CallerEvidence?) async throws(CallerRefusal) -> SecretLease {
        throw CallerRefusal(.unavailable, "no callers in this test")
      }
    }
    let sds = SecretDiscoveryService(leases: NoCallers(), counters: AgentCounters(), logger: Logger(label: "test"))
    return GRPCServiceTable([SDSSocketService(service: sds), EchoSocketService()])
  }
}
