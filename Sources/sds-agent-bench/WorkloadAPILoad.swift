import EnvoySDSProtos
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2

/// `count` SPIFFE Workload API `FetchX509SVID` streams held open on one server, opened the same
/// way whichever server it is: HTTP/2 connections of `perConnection` streams, each call carrying
/// the `workload.spiffe.io: true` header. Every stream carries the SVID, so every stream is
/// pushed on a rotation. `shape` gives the connections and the limits of the SDS streams phase.
struct WorkloadAPILoad {
  typealias Client = SpiffeWorkload_SpiffeWorkloadAPI.Client<HTTP2ClientTransport.Posix>

  static let header: Metadata = ["workload.spiffe.io": "true"]

  let shape: StreamLoad

  init(count: Int, perConnection: Int) {
    self.shape = StreamLoad(count: count, perConnection: perConnection)
  }

  var count: Int { self.shape.count }

  /// How long the rotation may take to reach every stream: far above what a debug build needs.
  var pushLimit: Duration { .seconds(30) + .milliseconds(5 * self.count) }

  /// Opens the streams on `socketPath`, waits until each has its first response or has failed
  /// (at most the shape's limit), runs `body` while they are all open, then closes them. `body`
  /// gets the time until all first responses, or nil if the limit came first.
  func withStreamsOpen<Result: Sendable>(
    on socketPath: String,
    _ body: (StreamTracker, Duration?) async throws -> Result
  ) async throws -> Result {
    let tracker = StreamTracker(streams: self.count, defaultStreams: self.count)
    return try await withThrowingTaskGroup(of: Void.self) { group in
      let started = ContinuousClock.now
      var firstStream = 0
      for size in self.shape.connectionSizes {
        group.addTask { [firstStream] in
          try await Self.openStreams(size, numberedFrom: firstStream, socketPath: socketPath, tracker: tracker)
        }
        firstStream += size
      }
      let answered = await StreamTracker.wait(for: tracker.allFirstResponses, atMost: self.shape.firstResponseLimit)
      let elapsed = ContinuousClock.now - started
      defer {
        tracker.close()
        group.cancelAll()
      }
      return try await body(tracker, answered ? elapsed : nil)
    }
  }

  /// Runs `body` with a Workload API client on `socketPath`.
  static func withClient<Result: Sendable>(
    socketPath: String, _ body: (Client) async throws -> Result
  ) async throws -> Result {
    let transport = try HTTP2ClientTransport.Posix(
      target: .unixDomainSocket(path: socketPath), transportSecurity: .plaintext)
    return try await withGRPCClient(transport: transport) { client in
      try await body(Client(wrapping: client))
    }
  }

  /// The first `FetchX509SVID` message `socketPath` answers.
  static func firstResponse(socketPath: String) async throws -> SpiffeWorkload_X509SVIDResponse {
    try await Self.withClient(socketPath: socketPath) { client in
      try await client.fetchX509SVID(
        request: ClientRequest(message: SpiffeWorkload_X509SVIDRequest(), metadata: Self.header)
      ) { response in
        for try await message in response.messages {
          return message
        }
        throw BenchError(.server, "the FetchX509SVID stream ended without a response")
      }
    }
  }

  /// One HTTP/2 connection's streams, numbered from `firstStream` for the tracker.
  private static func openStreams(
    _ count: Int, numberedFrom firstStream: Int, socketPath: String, tracker: StreamTracker
  ) async throws {
    try await Self.withClient(socketPath: socketPath) { client in
      await withDiscardingTaskGroup { streams in
        for index in 0..<count {
          let stream = firstStream + index
          streams.addTask {
            do {
              try await client.fetchX509SVID(
                request: ClientRequest(message: SpiffeWorkload_X509SVIDRequest(), metadata: Self.header)
              ) { response in
                var received = 0
                for try await _ in response.messages {
                  received += 1
                  if received == 1 {
                    tracker.firstResponse(stream: stream)
                  } else {
                    tracker.pushed(stream: stream, at: ContinuousClock.now)
                  }
                }
                throw BenchError(.server, "the server ended the stream after \(received) responses")
              }
            } catch {
              tracker.failed(stream: stream, subscribedToDefault: true, error)
            }
          }
        }
      }
    }
  }
}
