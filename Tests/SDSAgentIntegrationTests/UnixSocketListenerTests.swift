import Foundation
import SDSAgent
import SDSAgentCore
import SDSAgentTestSupport
import Testing

@Suite struct UnixSocketListenerTests {
  @Test(arguments: [UInt32(0o660), 0o600, 0o666])
  func theSocketHasTheConfiguredMode(mode: UInt32) async throws {
    try await RunningAgent.with(try RunningAgent.configuration(socketMode: mode)) { running in
      let attributes = try FileManager.default.attributesOfItem(atPath: running.socketPath)
      #expect((attributes[.posixPermissions] as? Int).map(UInt32.init) == mode)
      #expect(attributes[.type] as? FileAttributeType == .typeSocket)
    }
  }

  @Test func aStaleSocketFromACrashedRunIsReplaced() async throws {
    let configuration = try RunningAgent.configuration()
    // A socket file nobody listens on, as a killed agent leaves behind.
    let stale = try UnixSocketListener.bind(path: configuration.socketPath, mode: 0o600)
    close(stale.descriptor)
    #expect(FileManager.default.fileExists(atPath: configuration.socketPath))
    try await RunningAgent.with(configuration) { running in
      let served = try await SDSClient.fetch(socketPath: running.socketPath, names: ["default"])
      #expect(served.count == 1)
    }
  }

  @Test func aSocketInUseByALiveAgentIsNotStolen() async throws {
    try await RunningAgent.with { running in
      var second = AgentConfigurationBuilder(running.agent.configuration)
      second.stateDirectory = running.directory + "/other-state"
      await #expect {
        _ = try await Agent.build(configuration: try second.build(), logger: .init(label: "test"))
      } throws: { error in
        (error as? AgentError)?.code == .socketInUse
      }
      // The first agent is unharmed.
      let served = try await SDSClient.fetch(socketPath: running.socketPath, names: ["default"])
      #expect(served.count == 1)
    }
  }

  @Test func aPathThatIsNotASocketIsRefused() throws {
    let path = TemporaryDirectory.make() + "/file"
    _ = FileManager.default.createFile(atPath: path, contents: Data("x".utf8))
    #expect {
      _ = try UnixSocketListener.bind(path: path, mode: 0o660)
    } throws: { error in
      (error as? AgentError)?.code == .socketPath && "\(error)".contains("not a socket")
    }
    #expect(FileManager.default.contents(atPath: path) == Data("x".utf8))
  }
}
