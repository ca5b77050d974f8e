import EnvoySDSProtos
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SDSAgentCore

/// One request over the CA's addresses: each in its turn, the next one on `UNAVAILABLE` (a
/// connection that failed, or a replica over capacity), and the CA's retry hint kept for the
/// supervisor, which waits at least that long before the next attempt.
extension IstioCAClient {
  func callInTurn(
    _ request: Istio_V1_Auth_IstioCertificateRequest,
    metadata: Metadata
  ) async throws(CertificateAuthorityError) -> Istio_V1_Auth_IstioCertificateResponse {
    try await self.callInTurn { client, options in
      try await Istio_V1_Auth_IstioCertificateService.Client(wrapping: client).createCertificate(
        request, metadata: metadata, options: options)
    }
  }

  /// Any call of the CA's (`perform` on one address's connection, with the call's options), in turn.
  func callInTurn<Response: Sendable>(
    _ perform: (GRPCClient<HTTP2ClientTransport.Posix>, CallOptions) async throws -> Response
  ) async throws(CertificateAuthorityError) -> Response {
    let addresses = self.configuration.addresses
    let order = self.rotation.withLock { $0.order(now: Date()) }
    let clients = self.clients.withLock { $0 }
    var hint: Duration?
    var last: (index: Int, error: RPCError)?
    for index in order {
      do {
        // Fail fast while an address is unreachable: the next one, or the supervisor's backoff, follows.
        let response = try await self.call(
          perform, client: clients[index], waitForReady: false, timeout: self.configuration.requestTimeout)
        self.rotation.withLock { $0.succeeded(index) }
        return response
      } catch let error as RPCError where error.code == .unavailable {
        let pushback = Self.retryPushback(error.metadata)
        self.rotation.withLock { $0.failed(index, now: Date(), sample: self.random(), hint: pushback) }
        if let pushback {
          hint = max(hint ?? .zero, pushback)
          self.logger.notice(
            "the CA is over capacity and asks to retry later",
            metadata: ["address": "\(addresses[index])", "retry_after_ms": "\(pushback.milliseconds)"])
        } else if addresses.count > 1 {
          self.logger.warning(
            "the CA address is unavailable; trying the next",
            metadata: ["address": "\(addresses[index])", "error": "\(BoundedText(error.message))"])
        }
        last = (index, error)
      } catch let error as RPCError {
        throw Self.classify(error, address: "\(addresses[index])")
      } catch {
        throw CertificateAuthorityError(.unavailable, "cannot reach the CA at \(addresses[index])", cause: error)
      }
    }
    guard let last else {
      throw CertificateAuthorityError(.unavailable, "the CA has no address")
    }
    if hint == nil, let first = order.first {
      // A connection may be between two reconnect attempts (at most about 1 s apart): a CA that
      // has just come back gets one reconnect window before the attempt counts as failed.
      do {
        let response = try await self.call(
          perform, client: clients[first], waitForReady: true,
          timeout: min(self.configuration.requestTimeout, Self.reconnectWindow))
        self.rotation.withLock { $0.succeeded(first) }
        return response
      } catch let error as RPCError {
        throw Self.classify(error, address: "\(addresses[first])", retryAfter: Self.retryPushback(error.metadata))
      } catch {
        throw CertificateAuthorityError(.unavailable, "cannot reach the CA at \(addresses[first])", cause: error)
      }
    }
    throw Self.classify(last.error, address: "\(addresses[last.index])", retryAfter: hint)
  }

  private func call<Response: Sendable>(
    _ perform: (GRPCClient<HTTP2ClientTransport.Posix>, CallOptions) async throws -> Response,
    client: GRPCClient<HTTP2ClientTransport.Posix>,
    waitForReady: Bool,
    timeout: Duration
  ) async throws -> Response {
    var options = CallOptions.defaults
    options.timeout = timeout
    options.waitForReady = waitForReady
    return try await perform(client, options)
  }

  /// gRPC's retry hint, `grpc-retry-pushback-ms`: a non-negative whole number of milliseconds,
  /// capped at `longestPushback` so that no CA can park an agent until its certificate expires.
  /// Anything else is no hint.
  package static func retryPushback(_ metadata: Metadata) -> Duration? {
    guard let text = metadata[stringValues: Self.retryPushbackKey].first(where: { _ in true }),
      text.count <= 12, let milliseconds = Int64(text), milliseconds >= 0
    else { return nil }
    return min(.milliseconds(milliseconds), Self.longestPushback)
  }

  package static var retryPushbackKey: String { IstioCertificateSigner.retryPushbackKey }

  /// The longest retry hint honoured.
  package static let longestPushback = Duration.seconds(300)
}
