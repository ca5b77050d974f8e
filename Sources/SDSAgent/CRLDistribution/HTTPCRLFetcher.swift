import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import SDSAgentCore

/// Fetches a CRL from its distribution point: one HTTP/1.1 GET over plain TCP (CRLs are signed;
/// RFC 5280 §4.2.1.13), a 200 answer of at most `CertificateRevocationList.maximumEncodedLength`
/// bytes, all within `timeLimit` on the agent's clock. No redirect is followed.
package struct HTTPCRLFetcher<C: Clock>: CRLFetcher where C.Duration == Duration {
  let clock: C
  let timeLimit: Duration

  package init(clock: C, timeLimit: Duration = .seconds(10)) {
    self.clock = clock
    self.timeLimit = timeLimit
  }

  package func fetch(_ point: CRLDistributionPoint) async throws(CRLFetchFailure) -> [UInt8] {
    guard let url = URL(string: point.url), let host = url.host(percentEncoded: false), !host.isEmpty else {
      throw CRLFetchFailure(.unreachable, "the distribution point is not a URL with a host")
    }
    let port = url.port ?? 80
    let path = url.path(percentEncoded: true).isEmpty ? "/" : url.path(percentEncoded: true)
    let target = url.query(percentEncoded: true).map { "\(path)?\($0)" } ?? path
    let authority = url.port.map { "\(host.contains(":") ? "[\(host)]" : host):\($0)" } ?? host
    let limit = self.timeLimit
    do {
      let body = try await withTimeLimit(limit, on: self.clock) {
        try await Self.get(host: host, port: port, target: target, authority: authority, connectTimeout: limit)
      }
      guard let body else {
        throw CRLFetchFailure(.timeout, "the distribution point did not answer within \(DurationParser.format(limit))")
      }
      return body
    } catch let failure as CRLFetchFailure {
      throw failure
    } catch {
      throw CRLFetchFailure(.unreachable, "cannot fetch the CRL", cause: error)
    }
  }

  private static func get(
    host: String, port: Int, target: String, authority: String, connectTimeout: Duration
  ) async throws -> [UInt8] {
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .connectTimeout(.milliseconds(Int64(connectTimeout.seconds * 1000)))
      .connect(host: host, port: port) { channel in
        channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.addHTTPClientHandlers()
          return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
            wrappingChannelSynchronously: channel)
        }
      }
    return try await channel.executeThenClose { inbound, outbound in
      var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: target)
      head.headers.add(name: "Host", value: authority)
      // PEM first: `ca serve` then answers every root's CRL, not only the signing root's.
      head.headers.add(name: "Accept", value: "application/x-pem-file, application/pkix-crl;q=0.9")
      head.headers.add(name: "User-Agent", value: "sds-agent")
      head.headers.add(name: "Connection", value: "close")
      try await outbound.write(.head(head))
      try await outbound.write(.end(nil))
      let maximum = CertificateRevocationList.maximumEncodedLength
      var body: [UInt8] = []
      for try await part in inbound {
        switch part {
        case .head(let response):
          guard response.status == .ok else {
            throw CRLFetchFailure(.httpStatus, "the distribution point answered \(response.status.code), not 200")
          }
          if let length = response.headers.first(name: "Content-Length").flatMap(Int.init), length > maximum {
            throw CRLFetchFailure(.tooLarge, "the answer is \(length) bytes; a CRL is read up to \(maximum)")
          }
        case .body(let buffer):
          guard body.count + buffer.readableBytes <= maximum else {
            throw CRLFetchFailure(.tooLarge, "the answer is longer than \(maximum) bytes, the most a CRL is read to")
          }
          body += buffer.readableBytesView
        case .end:
          return body
        }
      }
      throw CRLFetchFailure(.unreachable, "the distribution point closed the connection before its answer ended")
    }
  }
}
