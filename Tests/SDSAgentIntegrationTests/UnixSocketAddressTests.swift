import Foundation
import SDSAgent
import SDSAgentCore
import SDSAgentTestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

@Suite struct UnixSocketAddressTests {
  @Test func aPathTooLongForSunPathIsRefusedWithItsLength() {
    let path = "/tmp/" + String(repeating: "x", count: UnixSocketAddress.maximumPathBytes)
    #expect {
      _ = try UnixSocketAddress(path: path)
    } throws: { error in
      (error as? AgentError)?.code == .socketPath && "\(error)".contains("\(path.utf8.count) bytes")
    }
  }

  @Test func anAbstractNotifySocketIsAddressedByItsNameAlone() throws {
    let name = "@sds-agent-test-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
    let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
    defer { close(fd) }
    let address = try UnixSocketAddress(systemdNotation: name)
    #expect(address.bind(fd) == 0)
    #expect(UnixSocketAddress(boundTo: fd)?.path == name)
    SystemdNotifier(environment: ["NOTIFY_SOCKET": name]).status("abstract")
    var buffer = [UInt8](repeating: 0, count: 512)
    // The datagram was sent synchronously above; never block a pool thread waiting.
    let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
    #expect(String(decoding: buffer[0..<max(0, count)], as: UTF8.self) == "STATUS=abstract")
  }

  @Test func theBoundPathOfADescriptorIsReadBack() throws {
    let listener = try UnixSocketListener.bind(path: TemporaryDirectory.make() + "/sds.sock", mode: 0o600)
    defer {
      close(listener.descriptor)
      listener.removeSocketFile()
    }
    #expect(UnixSocketAddress(boundTo: listener.descriptor)?.path == listener.path)
    #expect(SocketActivation.path(of: listener.descriptor) == listener.path)
  }
}
