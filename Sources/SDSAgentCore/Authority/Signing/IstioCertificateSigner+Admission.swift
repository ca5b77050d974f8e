import GRPCCore

extension IstioCertificateSigner {
  /// A refused signing as gRPC says "come back later": `UNAVAILABLE`, which clients retry, with
  /// the time in gRPC's standard `grpc-retry-pushback-ms` trailer.
  static func overCapacity(_ refusal: AdmissionRefusal) -> RPCError {
    var trailers = Metadata()
    // Rounded up: a client that waits exactly the hint finds its token there.
    let milliseconds = (refusal.retryAfter + .nanoseconds(999_999)).milliseconds
    trailers.addString("\(max(1, milliseconds))", forKey: Self.retryPushbackKey)
    let message =
      switch refusal.reason {
      case .inFlight: "the CA is signing at capacity; retry after grpc-retry-pushback-ms"
      case .callerRate: "this caller's signing rate is used up; retry after grpc-retry-pushback-ms"
      }
    return RPCError(code: .unavailable, message: message, metadata: trailers)
  }

  package static let retryPushbackKey = "grpc-retry-pushback-ms"
}
