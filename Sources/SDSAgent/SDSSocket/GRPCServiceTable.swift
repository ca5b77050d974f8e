/// The gRPC services the socket serves, by name.
struct GRPCServiceTable: Sendable {
  /// A request's service and method, once its `:path` names one the socket serves.
  struct Route: Equatable {
    let service: any GRPCSocketService
    let method: Substring

    static func == (lhs: Route, rhs: Route) -> Bool {
      lhs.service.name == rhs.service.name && lhs.method == rhs.method
    }
  }

  /// A handful, in the order given; the first of a name serves it.
  private let services: [any GRPCSocketService]

  init(_ services: [any GRPCSocketService]) {
    var named: Set<String> = []
    self.services = services.filter { named.insert($0.name).inserted }
  }

  /// The service and method `path` names (`/<service>/<method>`); nil if no service here has it.
  /// Split by bytes, not characters, and the service's name compared in place, not copied out
  /// and hashed: every call is routed, and `/` is one byte.
  func route(_ path: String) -> Route? {
    let bytes = path.utf8
    guard bytes.first == UInt8(ascii: "/") else { return nil }
    let nameStart = bytes.index(after: bytes.startIndex)
    guard let slash = bytes[nameStart...].firstIndex(of: UInt8(ascii: "/")) else { return nil }
    let name = path[nameStart..<slash]
    let method = path[bytes.index(after: slash)...]
    guard let service = self.services.first(where: { $0.name == name }), service.serves(method) else { return nil }
    return Route(service: service, method: method)
  }

  /// The services' names, for a client that asked for another.
  var names: String { self.services.map(\.name).sorted().joined(separator: ", ") }
}
