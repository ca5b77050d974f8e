import EnvoySDSProtos
import NIOCore
import NIOHTTP2
import NIOPosix
import SDSAgentCore

/// A `StreamSecrets` client that costs as little per stream as gRPC over HTTP/2 allows: one NIO
/// channel per connection carrying raw HTTP/2 frames (`LeanStreamHandler`), with no task, channel
/// or promise per stream. `StreamLoad` opens every server's streams with it by default, so that
/// the servers' costs, not grpc-swift's client's, decide the streams and fan-out figures.
enum LeanStreamClient {
  static let path = "/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets"

  /// One connection's streams: `count` of them, numbered for the tracker from `firstStream`.
  struct Connection: Sendable {
    let firstStream: Int
    let count: Int
    /// When each stream opens; nil opens them all once the server's SETTINGS are read.
    let pace: Pace?
  }

  /// Stream `k` of a connection opens at `start + offset + k × interval`.
  struct Pace: Sendable {
    let start: NIODeadline
    let offset: TimeAmount
    let interval: TimeAmount

    /// Connection `number` of `connections`, which take turns to open `rate` streams a second in
    /// all: stream `k` of connection `c` is the `(k × connections + c)`-th to open.
    init(start: NIODeadline, rate: Double, connection number: Int, of connections: Int) {
      self.start = start
      self.offset = .nanoseconds(Int64(Double(number) / rate * 1e9))
      self.interval = .nanoseconds(Int64(Double(connections) / rate * 1e9))
    }

    func due(_ index: Int) -> NIODeadline {
      self.start + self.offset + .nanoseconds(self.interval.nanoseconds * Int64(index))
    }
  }

  /// Opens `connection`'s streams on `socketPath` and holds them until the tracker's `finish`,
  /// then closes the connection. A connection that cannot be made fails each of its streams.
  static func hold(_ connection: Connection, on socketPath: String, tracker: some StreamObserver) async {
    let requests = Self.requests
    do {
      let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .channelInitializer { channel in
          channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandlers(
              NIOHTTP2Handler(mode: .client, initialSettings: LeanStreamHandler.settings),
              LeanStreamHandler(connection, requests: requests, tracker: tracker))
          }
        }
        .connect(unixDomainSocketPath: socketPath)
        .get()
      await tracker.finish.wait()
      try? await channel.close()
    } catch {
      let failure = BenchError(.server, "could not connect to \(socketPath)", cause: error)
      for index in 0..<connection.count {
        tracker.failed(stream: connection.firstStream + index, subscribedToDefault: index % 2 == 0, failure)
      }
    }
  }

  /// The serialized requests for `default` and for `ROOTCA`, as `StreamLoad` subscribes.
  private static var requests: [[UInt8]] {
    [SecretResource.tlsCertificate.name, SecretResource.validationContext.name].map { name in
      var request = Envoy_Service_Discovery_V3_DiscoveryRequest()
      request.resourceNames = [name]
      request.typeURL = SecretResource.typeURL
      request.node.id = "bench"
      // A message of three set fields always serializes.
      return try! request.serializedBytes()
    }
  }
}
