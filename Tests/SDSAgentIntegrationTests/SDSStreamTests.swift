import EnvoySDSProtos
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import SDSAgent
import SDSAgentCore
import SDSAgentTestSupport
import SwiftProtobuf
import Testing
@_spi(FixedExpiryValidationTime) import X509

/// SDS behaviour against a real agent, over its socket and a test socket of its own
/// (`TestTransport`).
@Suite(.timeLimit(.minutes(2))) struct SDSStreamTests {
  @Test(arguments: TestTransport.allCases) func aStreamGetsBothSecretsAndEveryRotationWithoutReconnecting(
    over transport: TestTransport
  ) async throws {
    try await RunningAgent.with { running in
      try await running.withClient(over: transport) { client in
        try await client.withStream { stream in
          stream.request(["default", "ROOTCA"])
          let first = try #require(try await stream.next())
          let secrets = try first.secrets()
          #expect(first.typeURL == SecretResource.typeURL)
          #expect(first.resources.allSatisfy { $0.typeURL == SecretResource.typeURL })
          #expect(secrets.map(\.name) == ["default", "ROOTCA"])
          let certificate = try #require(secrets.first { $0.kind == .tlsCertificate })
          let bundle = try #require(secrets.first { $0.kind == .validationContext })
          try await certificate.expectValid(against: bundle)
          stream.request(["default", "ROOTCA"], acknowledging: first)

          var serials = [certificate.certificates[0].serialNumber]
          for acks in 1...3 {
            // Rotate only once the ACK arrived, or the ACK would name a superseded nonce.
            await running.agent.counters.waitUntil { $0[.acks] == acks }
            try await running.agent.rotate()
            let pushed = try #require(try await stream.next())
            let rotated = try #require(try pushed.secrets().first { $0.kind == .tlsCertificate })
            try await rotated.expectValid(against: bundle)
            serials.append(rotated.certificates[0].serialNumber)
            #expect(pushed.nonce != first.nonce)
            stream.request(["default", "ROOTCA"], acknowledging: pushed)
          }
          #expect(Set(serials).count == 4)
          await running.agent.counters.waitUntil { $0[.acks] == 4 }
        }
      }
    }
  }

  @Test(arguments: TestTransport.allCases) func anACKOrNACKIsNotAnsweredAndAStaleNonceIsIgnored(
    over transport: TestTransport
  ) async throws {
    try await RunningAgent.with { running in
      try await running.withClient(over: transport) { client in
        try await client.withStream { stream in
          stream.request(["default"])
          let first = try #require(try await stream.next())
          stream.request(["default"], acknowledging: first)
          await running.agent.counters.waitUntil { $0[.acks] == 1 }

          try await running.agent.rotate()
          let second = try #require(try await stream.next())
          // The ACK was not answered: the next message is the rotation, not a repeat.
          #expect(
            try second.secrets()[0].certificates[0].serialNumber != first.secrets()[0].certificates[0].serialNumber)
          stream.reject(second, names: ["default"], keptVersion: first.versionInfo, message: "test rejects this")
          await running.agent.counters.waitUntil { $0[.nacks] == 1 }

          // A late request naming the first response is stale and ignored, even with new names.
          stream.request(["default", "ROOTCA"], acknowledging: first)
          await running.agent.counters.waitUntil { $0[.staleRequests] == 1 }

          try await running.agent.rotate()
          let third = try #require(try await stream.next())
          // Not the NACKed payload again, and still only the names of the current subscription.
          #expect(third.versionInfo != second.versionInfo)
          #expect(try third.secrets().map(\.name) == ["default"])
          #expect(running.agent.counters[.nacks] == 1)
        }
      }
    }
  }

  @Test func nacksAreCountedByAClosedSetOfReasonsAndTheirMessagesAreKeptShort() async throws {
    try await RunningAgent.with { running in
      try await running.withClient(over: .testSocket) { client in
        try await client.withStream { stream in
          stream.request(["default"])
          var response = try #require(try await stream.next())
          let messages =
            (0..<50).map { "Failed to load private key number \($0)" } + [String(repeating: "x", count: 100_000)]
          for (index, message) in messages.enumerated() {
            stream.reject(response, names: ["default"], keptVersion: "", message: message)
            await running.agent.counters.waitUntil { $0[.nacks] == index + 1 }
            try await running.agent.rotate()
            response = try #require(try await stream.next())
          }
          // The 100,000-character message was cut before /debug/streams kept it.
          let kept = try #require(running.agent.streams.streams.first?.lastNackMessage)
          #expect(kept.hasPrefix("xxx") && kept.count < 600)
        }
      }
      let reasons = running.agent.counters.series.filter { $0.series.name == .nacks }.flatMap(\.series.labels)
      #expect(Set(reasons.map(\.value)) == [NackReason.privateKey.rawValue, NackReason.other.rawValue])
      #expect(running.agent.counters[.nacks] == 51)
    }
  }

  @Test(arguments: TestTransport.allCases) func aReconnectingStreamGetsTheCurrentSecretsWhateverItCarries(
    over transport: TestTransport
  ) async throws {
    try await RunningAgent.with { running in
      try await running.withClient(over: transport) { client in
        let version = try await client.withStream { stream in
          stream.request(["default"])
          return try #require(try await stream.next())
        }
        try await client.withStream { stream in
          // As Envoy does after a reconnect: the last version and nonce of the old stream.
          stream.request(["default"], acknowledging: version)
          let response = try #require(try await stream.next())
          #expect(try response.secrets().map(\.name) == ["default"])
        }
      }
    }
  }

  @Test(arguments: TestTransport.allCases) func anUnknownNameEndsTheStreamWithAnErrorNamingTheKnownOnes(
    over transport: TestTransport
  ) async throws {
    try await RunningAgent.with { running in
      try await running.withClient(over: transport) { client in
        try await client.withStream { stream in
          stream.request(["default", "spiffe://elsewhere.example"])
          await #expect {
            _ = try await stream.next()
          } throws: { error in
            guard let error = error as? RPCError else { return false }
            return error.code == .notFound && error.message.contains("\"default\"")
              && error.message.contains("\"ROOTCA\"") && error.message.contains("elsewhere.example")
          }
        }
        var request = Envoy_Service_Discovery_V3_DiscoveryRequest()
        request.resourceNames = ["nope"]
        await #expect {
          _ = try await client.fetchSecrets(request)
        } throws: { error in
          (error as? RPCError)?.code == .notFound
        }
      }
      // The agent still serves.
      let secrets = try await SDSClient.fetch(socketPath: running.socketPath, names: ["default"])
      #expect(secrets.map(\.name) == ["default"])
      #expect(running.agent.counters[.rejectedRequests] == 2)
    }
  }

  @Test(arguments: TestTransport.allCases) func aMalformedRequestIsRefusedAndTheAgentKeepsServing(
    over transport: TestTransport
  ) async throws {
    try await RunningAgent.with { running in
      try await running.withClient(over: transport) { client in
        let garbage: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x12]
        await #expect {
          _ = try await client.fetchSecrets(rawRequest: garbage)
        } throws: { error in
          (error as? RPCError)?.code == .invalidArgument
        }
      }
      let secrets = try await SDSClient.fetch(socketPath: running.socketPath, names: ["default", "ROOTCA"])
      #expect(secrets.count == 2)
    }
  }

  @Test(arguments: TestTransport.allCases) func aClientThatDisconnectsMidStreamLeavesNothingBehind(
    over transport: TestTransport
  ) async throws {
    try await RunningAgent.with { running in
      for _ in 0..<3 {
        try await running.withClient(over: transport) { client in
          try await client.withStream(closing: .abrupt) { stream in
            stream.request(["default", "ROOTCA"])
            _ = try #require(try await stream.next())
          }
        }
      }
      await running.agent.counters.waitUntil { $0.openStreams == 0 }
      #expect(running.agent.cache.subscriberCount == 0)
      #expect(running.agent.identities.node.subscriberCount == 0)
      let served = try await SDSClient.fetch(socketPath: running.socketPath, names: ["default"])
      #expect(served.count == 1)
    }
  }

  @Test func shutdownEndsOpenStreamsCleanly() async throws {
    let configuration = try RunningAgent.configuration()
    let agent = try await Agent.build(configuration: configuration, logger: .init(label: "test"))
    let group = agent.makeServiceGroup(gracefulShutdownSignals: [])
    try await withThrowingTaskGroup(of: Void.self) { tasks in
      tasks.addTask { try await group.run() }
      try await SDSClient.withConnection(socketPath: configuration.socketPath) { client in
        try await SDSStream.with(client: client) { stream in
          stream.request(["default"])
          _ = try #require(try await stream.next())
          await group.triggerGracefulShutdown()
          // The stream ends with OK rather than hanging the shutdown.
          #expect(try await stream.next() == nil)
        }
      }
      try await tasks.waitForAll()
    }
    #expect(!FileManager.default.fileExists(atPath: configuration.socketPath))
  }
}

extension Envoy_Service_Discovery_V3_DiscoveryResponse {
  func secrets() throws -> [SecretSummary] {
    try self.resources.map(SecretSummary.init(any:))
  }
}

extension SecretSummary {
  /// The chain verifies against `bundle`, the key matches the leaf, the identity is `identity`
  /// (by default the agent's).
  func expectValid(
    against bundle: SecretSummary,
    identity: SPIFFEID = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/default/sa/default")
  ) async throws {
    var verifier = Verifier(rootCertificates: CertificateStore(bundle.certificates)) {
      RFC5280Policy(fixedExpiryValidationTime: Date())
      SPIFFELeafPolicy(expectedIdentity: identity)
    }
    let result = await verifier.validate(
      leaf: self.certificates[0], intermediates: CertificateStore(Array(self.certificates.dropFirst())))
    guard case .validCertificate = result else {
      Issue.record("chain does not verify: \(result)")
      return
    }
    let key = try Certificate.PrivateKey(pemEncoded: try #require(self.privateKeyPEM))
    #expect(key.publicKey == self.certificates[0].publicKey)
    #expect(self.privateKeyPEM?.hasPrefix("-----BEGIN " + "PRIVATE KEY-----") == true)
  }
}
