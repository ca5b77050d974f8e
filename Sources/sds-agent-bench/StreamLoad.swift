import EnvoySDSProtos
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import NIOCore
import SDSAgentCore

/// `count` StreamSecrets streams held open on one server, opened the same way whichever server
/// it is: HTTP/2 connections of `perConnection` streams, alternately subscribed to `default` and
/// `ROOTCA` (Envoy opens one stream per secret). The client neither ACKs nor sends anything after
/// a stream's first request.
struct StreamLoad {
  /// Which client opens the streams.
  enum Client: String, Sendable, CaseIterable {
    /// `LeanStreamClient`: raw HTTP/2 frames, one channel per connection.
    case lean
    /// grpc-swift's client: a task per stream, as the figures before the lean client were measured.
    case grpcSwift = "grpc-swift"
  }

  let count: Int
  let perConnection: Int
  var client = Client.lean
  /// Streams opened per second across all connections (lean client only); nil opens all at once.
  var openRate: Double?

  var connectionSizes: [Int] {
    let connections = (self.count + self.perConnection - 1) / self.perConnection
    return (0..<connections).map { min(self.perConnection, self.count - $0 * self.perConnection) }
  }

  var connections: Int { self.connectionSizes.count }

  /// Streams subscribed to `default`: the first, third, … of each connection.
  var defaultStreams: Int { self.connectionSizes.map { ($0 + 1) / 2 }.reduce(0, +) }

  /// How long all first responses may take before the streams that have none are reported missing:
  /// far above what a debug build needs (20,000 streams: 51 s on 2 shared cores), so only a stall
  /// hits it.
  var firstResponseLimit: Duration { .seconds(60) + .milliseconds(10 * self.count) + self.openingTime }

  /// How long a paced opening takes to open the last stream.
  var openingTime: Duration { self.openRate.map { .seconds(Double(self.count) / $0) } ?? .zero }

  /// How long the rotation may take to reach every `default` stream, on the same terms.
  var pushLimit: Duration { .seconds(30) + .milliseconds(5 * self.defaultStreams) }

  /// Opens the streams on `socketPath`, waits until each has its first response or has failed
  /// (at most `firstResponseLimit`), runs `body` while they are all open, then closes them.
  /// `body` gets the time until all first responses, or nil if the limit came first.
  func withStreamsOpen<Result: Sendable>(
    on socketPath: String,
    _ body: (StreamTracker, Duration?) async throws -> Result
  ) async throws -> Result {
    let tracker = StreamTracker(streams: self.count, defaultStreams: self.defaultStreams)
    return try await self.withStreamsOpen(on: socketPath, following: tracker, body)
  }

  /// The same, each stream's events reported to `tracker`.
  func withStreamsOpen<Tracker: StreamObserver, Result: Sendable>(
    on socketPath: String, following tracker: Tracker,
    _ body: (Tracker, Duration?) async throws -> Result
  ) async throws -> Result {
    try await withThrowingTaskGroup(of: Void.self) { group in
      let started = ContinuousClock.now
      let start = NIODeadline.now()
      let sizes = self.connectionSizes
      var firstStream = 0
      for (number, size) in sizes.enumerated() {
        switch self.client {
        case .lean:
          let pace = self.openRate.map {
            LeanStreamClient.Pace(start: start, rate: $0, connection: number, of: sizes.count)
          }
          let connection = LeanStreamClient.Connection(firstStream: firstStream, count: size, pace: pace)
          group.addTask { await LeanStreamClient.hold(connection, on: socketPath, tracker: tracker) }
        case .grpcSwift:
          group.addTask { [firstStream] in
            try await Self.openStreams(size, numberedFrom: firstStream, socketPath: socketPath, tracker: tracker)
          }
        }
        firstStream += size
      }
      let answered = await StreamTracker.wait(for: tracker.allFirstResponses, atMost: self.firstResponseLimit)
      let elapsed = ContinuousClock.now - started
      // Every stream waits for `finish`, whatever `body` does, or the group would never end.
      defer {
        tracker.close()
        group.cancelAll()
      }
      return try await body(tracker, answered ? elapsed : nil)
    }
  }

  /// One HTTP/2 connection's streams, numbered from `firstStream` for the tracker.
  private static func openStreams(
    _ count: Int, numberedFrom firstStream: Int, socketPath: String, tracker: some StreamObserver
  ) async throws {
    let transport = try HTTP2ClientTransport.Posix(
      target: .unixDomainSocket(path: socketPath), transportSecurity: .plaintext)
    try await withGRPCClient(transport: transport) { client in
      let sds = Bench.SDS(wrapping: client)
      await withDiscardingTaskGroup { streams in
        for index in 0..<count {
          let stream = firstStream + index
          let name = index % 2 == 0 ? SecretResource.tlsCertificate.name : SecretResource.validationContext.name
          let subscribedToDefault = name == SecretResource.tlsCertificate.name
          streams.addTask {
            var request = Envoy_Service_Discovery_V3_DiscoveryRequest()
            request.resourceNames = [name]
            request.typeURL = SecretResource.typeURL
            request.node.id = "bench"
            do {
              try await sds.streamSecrets(
                request: StreamingClientRequest { [request] writer in
                  tracker.requested(stream: stream, at: .now)
                  try await writer.write(request)
                  await tracker.finish.wait()
                }
              ) { response in
                var received = 0
                for try await _ in response.messages {
                  received += 1
                  if received == 1 {
                    tracker.firstResponse(stream: stream)
                  } else if subscribedToDefault {
                    tracker.pushed(stream: stream, at: ContinuousClock.now)
                  }
                }
                // Counted only while the measurement needs the stream (see `StreamTracker.failed`).
                throw BenchError(.server, "the server ended the stream after \(received) responses")
              }
            } catch {
              tracker.failed(stream: stream, subscribedToDefault: subscribedToDefault, error)
            }
          }
        }
      }
    }
  }
}
