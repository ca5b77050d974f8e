import NIOCore
import NIOHPACK
import Testing

@testable import SDSAgent

/// The SDS socket's own gRPC framing: length-prefixed messages, request heads, status messages.
/// End to end, each rule is also checked with a raw HTTP/2 client (Tests/e2e/test_grpc_protocol.py).
@Suite struct GRPCFramingTests {
  @Test func messagesSplitAcrossDataFramesAreReassembled() throws {
    var deframer = GRPCMessageDeframer(maximumLength: 1024)
    let framed =
      GRPCMessageDeframer.frame([1, 2, 3], allocator: .init())
      .readableBytesView + GRPCMessageDeframer.frame([], allocator: .init()).readableBytesView
    let bytes = Array(framed)
    deframer.append(ByteBuffer(bytes: bytes[..<3]))
    #expect(try deframer.next() == nil)
    #expect(deframer.hasPartialMessage)
    deframer.append(ByteBuffer(bytes: bytes[3...]))
    #expect(try deframer.next() == ByteBuffer(bytes: [1, 2, 3]))
    #expect(try deframer.next() == ByteBuffer())
    #expect(try deframer.next() == nil)
    #expect(!deframer.hasPartialMessage)
  }

  @Test func aMessageOverTheLimitIsRefusedOnItsPrefix() {
    var deframer = GRPCMessageDeframer(maximumLength: 1024)
    deframer.append(ByteBuffer(bytes: [0, 0, 0, 4, 1]))
    #expect {
      _ = try deframer.next()
    } throws: { error in
      let error = error as? GRPCStatusError
      return error?.code == .messageTooLarge && error?.status.code == .resourceExhausted
    }
  }

  @Test func aCompressedMessageIsRefused() {
    var deframer = GRPCMessageDeframer(maximumLength: 1024)
    deframer.append(ByteBuffer(bytes: [1, 0, 0, 0, 0]))
    #expect {
      _ = try deframer.next()
    } throws: { error in
      let error = error as? GRPCStatusError
      return error?.code == .compressedMessage && error?.status.code == .internalError
    }
  }

  @Test(arguments: [
    ("1S", TimeAmount.seconds(1)), ("250m", .milliseconds(250)), ("2H", .hours(2)), ("3M", .minutes(3)),
    ("7u", .microseconds(7)), ("99999999n", .nanoseconds(99_999_999)),
  ])
  func grpcTimeoutsParse(text: String, expected: TimeAmount) {
    #expect(GRPCRequestHead.timeout(text) == expected)
  }

  @Test(arguments: ["", "S", "123456789S", "10x", "-1S", "1.5S", "１S"])
  func malformedTimeoutsDoNotParse(text: String) {
    #expect(GRPCRequestHead.timeout(text) == nil)
  }

  @Test func aRequestHeadNamesItsMethodAndToken() throws {
    let headers: HPACKHeaders = [
      ":method": "POST", ":path": "/envoy.service.secret.v3.SecretDiscoveryService/DeltaSecrets",
      "content-type": "application/grpc+proto", "grpc-timeout": "5S",
      "istio_sds_credentials_header-bin": "dG9rZW4",
    ]
    let head = try GRPCRequestHead.parse(headers, services: EchoSocketService.servicesWithSDS)
    #expect(head.route.service.name == SDSSocketService.name)
    #expect(head.route.method == "DeltaSecrets")
    #expect(head.timeout == .seconds(5))
    #expect(head.token == "token")
  }

  @Test(
    arguments: [
      ("application/grpc", true), ("application/grpc+proto", true), ("Application/GRPC;charset=x", true),
      ("application/grpcx", false), ("application/grp", false), ("", false), ("application\u{0F}grpc", false),
      ("text/grpc", false),
    ])
  func contentTypesOfGRPC(contentType: String, isGRPC: Bool) {
    #expect(GRPCRequestHead.isGRPC(contentType) == isGRPC)
  }

  @Test func theFirstOfEachHeaderCountsAndATokenMayComeAsAuthorization() throws {
    let path = "/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets"
    let headers: HPACKHeaders = [
      ":method": "POST", ":path": path, "content-type": "application/grpc", "grpc-timeout": "2M",
      "grpc-timeout": "1x", ":path": "/x/y", "authorization": "Bearer abc",
    ]
    let head = try GRPCRequestHead.parse(headers, services: EchoSocketService.servicesWithSDS)
    #expect(head.route.method == "StreamSecrets" && head.timeout == .minutes(2))
    #expect(head.token == "abc")
    let plain: HPACKHeaders = [":method": "POST", ":path": path, "content-type": "application/grpc"]
    #expect(try GRPCRequestHead.parse(plain, services: EchoSocketService.servicesWithSDS).token == nil)
  }

  @Test func refusalsSayWhy() {
    func refusal(_ headers: HPACKHeaders) -> GRPCRequestHead.Refusal? {
      do {
        _ = try GRPCRequestHead.parse(headers, services: EchoSocketService.servicesWithSDS)
        return nil
      } catch {
        return error
      }
    }
    let path = "/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets"
    let get = refusal([":method": "GET", ":path": path, "content-type": "application/grpc"])
    #expect(get?.code == .notPost && get?.httpStatus == 405)
    let notGRPC = refusal([":method": "POST", ":path": path, "content-type": "application/grpcx"])
    #expect(notGRPC?.code == .notGRPC && notGRPC?.httpStatus == 415)
    let unknown = refusal([":method": "POST", ":path": "/x/y", "content-type": "application/grpc"])
    #expect(unknown?.code == .unknownMethod && unknown?.status.code == .unimplemented)
    let gzip = refusal([":method": "POST", ":path": path, "content-type": "application/grpc", "grpc-encoding": "gzip"])
    #expect(gzip?.code == .compression && gzip?.status.code == .unimplemented)
    #expect(gzip?.status.message.contains("gzip") == true)
    let timeout = refusal([":method": "POST", ":path": path, "content-type": "application/grpc", "grpc-timeout": "1x"])
    #expect(timeout?.code == .malformedTimeout && timeout?.status.code == .invalidArgument)
  }

  @Test func statusMessagesArePercentEncoded() {
    #expect(GRPCStatus.percentEncoded("café 100%\n") == "caf%C3%A9 100%25%0A")
    var trailers = HPACKHeaders()
    GRPCStatus(code: .notFound, message: String(repeating: "a", count: 5000)).add(to: &trailers)
    #expect(trailers.first(name: "grpc-status") == "5")
    #expect((trailers.first(name: "grpc-message")?.count ?? 0) < 1100)
  }
}
