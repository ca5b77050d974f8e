import GRPCNIOTransportHTTP2

extension HTTP2ServerTransport.Posix.Config {
  /// The SDS socket's transport: many streams per connection, connections without a stream
  /// closed after `maxIdleTime`, and peers that stop answering pings closed.
  ///
  /// grpc-swift-nio-transport's idle timer runs only while a connection has no open stream
  /// (`ServerConnectionManagementHandler`), so Envoy's hours-long SDS streams are never idle;
  /// a connection that never opens one is. A peer silent for `silentPeerTimeout` (one that does
  /// not answer the keepalive's pings, or never spoke HTTP/2) is closed by `SilentPeerCloser`.
  public static func sds(
    peerCredentials: Bool,
    silentPeerTimeout: Duration = .seconds(Agent.silentPeerTimeoutSeconds)
  ) -> Self {
    var config = Self.defaults
    // Envoy opens one SDS stream per secret on one connection; a gateway with many secrets, or
    // many Envoys behind one proxy, needs more than HTTP/2's customary 100.
    config.http2.maxConcurrentStreams = Agent.maximumStreamsPerConnection
    config.connection.maxIdleTime = .seconds(Agent.connectionIdleTimeSeconds)
    config.connection.keepalive.time = .seconds(Agent.keepaliveTimeSeconds)
    config.connection.keepalive.timeout = .seconds(Agent.keepaliveTimeoutSeconds)
    config.channelDebuggingCallbacks.onAcceptTCPConnection = SilentPeerCloser.installer(after: silentPeerTimeout)
    if peerCredentials {
      config.channelDebuggingCallbacks.onAcceptHTTP2Stream = PeerCredentialsHandler.install(on:)
    }
    return config
  }
}
