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

@Suite(.timeLimit(.minutes(1))) struct AdminClientTests {
  @Test func aMissingEndpointSaysHowToStartOne() async throws {
    let admin = AgentConfiguration.AdminAddress.unixSocket(path: TemporaryDirectory.make() + "/admin.sock")
    await #expect {
      _ = try await AdminClient.request("GET", "/healthz", at: admin)
    } throws: { error in
      (error as? AgentError)?.code == .connection && "\(error)".contains("--admin \(admin)")
    }
  }

  @Test func anEndpointThatNeverAnswersTimesOut() async throws {
    // Listening, so the kernel completes the connection, but nobody ever accepts or answers.
    let listener = try UnixSocketListener.bind(path: TemporaryDirectory.make() + "/admin.sock", mode: 0o600)
    defer {
      close(listener.descriptor)
      listener.removeSocketFile()
    }
    await #expect {
      _ = try await AdminClient.request(
        "GET", "/healthz", at: .unixSocket(path: listener.path), timeout: .milliseconds(300))
    } throws: { error in
      (error as? AgentError)?.code == .connection && "\(error)".contains("did not answer")
    }
  }
}
