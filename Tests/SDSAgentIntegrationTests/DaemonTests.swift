import Foundation
import SDSAgent
import SDSAgentCore
import SDSAgentTestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#endif

@Suite(.timeLimit(.minutes(2))) struct DaemonTests {
  @Test func theDrillPassesAgainstALiveAgent() async throws {
    let admin = AgentConfiguration.AdminAddress.unixSocket(path: TemporaryDirectory.make() + "/admin.sock")
    var builder = AgentConfigurationBuilder()
    builder.admin = admin
    let configuration = try builder.build()
    try await RunningAgent.with(configuration) { running in
      await running.agent.waitForAdminEndpoint()
      let report = try await RotationDrill(socketPath: running.socketPath, admin: admin, timeout: .seconds(10)).run()
      #expect(report.passed, "\(report.text)")
      #expect(report.newSerial != nil && report.newSerial != report.oldSerial)
      #expect(report.pushLatency != nil)
    }
  }

  @Test func theDrillFailsWhenThePushNeverComes() async throws {
    let adminB = AgentConfiguration.AdminAddress.unixSocket(path: TemporaryDirectory.make() + "/admin.sock")
    try await RunningAgent.with { a in
      var builderB = AgentConfigurationBuilder()
      builderB.admin = adminB
      let configurationB = try builderB.build()
      try await RunningAgent.with(configurationB) { b in
        await b.agent.waitForAdminEndpoint()
        // Rotating agent B never pushes on agent A's stream.
        let report = try await RotationDrill(socketPath: a.socketPath, admin: adminB, timeout: .seconds(1)).run()
        #expect(!report.passed)
        #expect(report.failures.contains { $0.contains("no new certificate arrived") })
      }
    }
  }

  @Test func theAdminEndpointServesMetricsThatMoveWithStreams() async throws {
    let admin = AgentConfiguration.AdminAddress.unixSocket(path: TemporaryDirectory.make() + "/admin.sock")
    var builder = AgentConfigurationBuilder()
    builder.admin = admin
    let configuration = try builder.build()
    try await RunningAgent.with(configuration) { running in
      await running.agent.waitForAdminEndpoint()
      let ready = try await AdminClient.request("GET", "/readyz", at: admin)
      #expect(ready.status == 200)
      try await SDSClient.withConnection(socketPath: running.socketPath) { client in
        try await SDSStream.with(client: client) { stream in
          stream.request(["default"], nodeID: "gateway-1")
          _ = try await stream.next()
          let metrics = try await AdminClient.request("GET", "/metrics", at: admin).body
          #expect(metrics.contains("sds_agent_streams_open 1"))
          #expect(metrics.contains("sds_agent_streams_opened_total 1"))
          let streams = try await AdminClient.request("GET", "/debug/streams", at: admin).body
          #expect(streams.contains("gateway-1") && streams.contains("\"default\""))
        }
      }
      await running.agent.counters.waitUntil { $0.openStreams == 0 }
      let after = try await AdminClient.request("GET", "/metrics", at: admin).body
      #expect(after.contains("sds_agent_streams_closed_total 1"))
      #expect(after.contains("sds_agent_streams_open 0"))
      let secrets = try await AdminClient.request("GET", "/debug/secrets", at: admin).body
      #expect(secrets.contains("next_rotation") && !secrets.contains("PRIVATE KEY"))
      let otherIdentity = try await AdminClient.request(
        "POST", "/rotate?identity=spiffe://cluster.local/ns/x/sa/y", at: admin)
      #expect(otherIdentity.status == 404)
      let wrongMethod = try await AdminClient.request("GET", "/rotate", at: admin)
      #expect(wrongMethod.status == 405)
    }
  }

  @Test func sdNotifyDatagramsReachTheNotifySocket() throws {
    let path = TemporaryDirectory.make() + "/notify.sock"
    let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
    defer { close(fd) }
    #expect(try UnixSocketAddress(path: path).bind(fd) == 0)
    let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": path])
    notifier.ready(status: "serving")
    var buffer = [UInt8](repeating: 0, count: 512)
    // The datagram was sent synchronously above; never block a pool thread waiting.
    let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
    #expect(String(decoding: buffer[0..<max(0, count)], as: UTF8.self) == "READY=1\nSTATUS=serving")
    #expect(SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "30000000"]) == .seconds(15))
    #expect(SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"]) == nil)
  }

  @Test func aNotifySocketNobodyReadsNeverBlocksTheAgent() throws {
    let path = TemporaryDirectory.make() + "/notify.sock"
    let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
    defer { close(fd) }
    #expect(try UnixSocketAddress(path: path).bind(fd) == 0)
    let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": path])
    // Far more than the queue holds (net.unix.max_dgram_qlen, 10 by default): each call returns.
    for index in 0..<200 { notifier.status("status \(index)") }
    notifier.stopping()
    var buffer = [UInt8](repeating: 0, count: 512)
    var received: [String] = []
    while true {
      let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
      guard count > 0 else { break }
      received.append(String(decoding: buffer[0..<count], as: UTF8.self))
    }
    #expect(received.first == "STATUS=status 0")
    #expect(received.count < 201, "the queue held every datagram: this test no longer fills it")
  }
}
