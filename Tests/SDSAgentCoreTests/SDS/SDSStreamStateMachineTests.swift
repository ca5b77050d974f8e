import Foundation
import SDSAgentCore
import SDSAgentTestSupport
import Testing

@Suite struct SDSStreamStateMachineTests {
  static let naming = SecretNaming(identity: try! SPIFFEID(parsing: "spiffe://cluster.local/ns/default/sa/default"))
  let cache: SecretCache

  init() throws {
    self.cache = SecretCache()
    try self.cache.update(with: Fixtures.issue())
  }

  @Test func theFirstRequestGetsEveryNameOnce() throws {
    var machine = SDSStreamStateMachine(naming: Self.naming)
    let outcome = try machine.receive(
      SDSRequest(resourceNames: ["default", "ROOTCA", "default"]), served: self.cache.current)
    #expect(outcome.feedback == .initial)
    let plan = try #require(outcome.response)
    #expect(plan.resources == [.tlsCertificate, .validationContext])
    #expect(!plan.versionInfo.isEmpty && !plan.nonce.isEmpty)
  }

  @Test func anEmptyListAsksForEverything() throws {
    var machine = SDSStreamStateMachine(naming: Self.naming)
    let plan = try #require(try machine.receive(SDSRequest(resourceNames: []), served: self.cache.current).response)
    #expect(plan.resources == [.tlsCertificate, .validationContext])
  }

  @Test func anACKIsNotAnswered() throws {
    var machine = SDSStreamStateMachine(naming: Self.naming)
    let plan = try #require(
      try machine.receive(SDSRequest(resourceNames: ["default"]), served: self.cache.current).response)
    let ack = SDSRequest(versionInfo: plan.versionInfo, resourceNames: ["default"], responseNonce: plan.nonce)
    let outcome = try machine.receive(ack, served: self.cache.current)
    #expect(outcome.feedback == .ack(versionInfo: plan.versionInfo))
    #expect(outcome.response == nil)
  }

  @Test func aNACKIsCountedButNotAnsweredWithTheSamePayload() throws {
    var machine = SDSStreamStateMachine(naming: Self.naming)
    let plan = try #require(
      try machine.receive(SDSRequest(resourceNames: ["default"]), served: self.cache.current).response)
    let nack = SDSRequest(
      versionInfo: "",
      resourceNames: ["default"],
      responseNonce: plan.nonce,
      errorDetail: .init(code: 3, message: "bad key")
    )
    let outcome = try machine.receive(nack, served: self.cache.current)
    #expect(outcome.feedback == .nack(versionInfo: "", nonce: plan.nonce, message: "bad key"))
    #expect(outcome.response == nil)
    // A later change of the secrets is sent as usual.
    try self.cache.update(with: Fixtures.issue())
    let changed = machine.secretsChanged(self.cache.current)
    let next = try #require(changed)
    #expect(next.nonce != plan.nonce)
    #expect(next.versionInfo != plan.versionInfo)
  }

  @Test func aStaleNonceIsIgnored() throws {
    var machine = SDSStreamStateMachine(naming: Self.naming)
    let first = try #require(
      try machine.receive(SDSRequest(resourceNames: ["default"]), served: self.cache.current).response)
    try self.cache.update(with: Fixtures.issue())
    let pushed = machine.secretsChanged(self.cache.current)
    let second = try #require(pushed)
    // The ACK of the first response arrives after the second was sent, even with new names.
    let late = SDSRequest(
      versionInfo: first.versionInfo, resourceNames: ["default", "ROOTCA"], responseNonce: first.nonce)
    let outcome = try machine.receive(late, served: self.cache.current)
    #expect(outcome.feedback == .stale(nonce: first.nonce))
    #expect(outcome.response == nil)
    #expect(machine.subscribedResources == [.tlsCertificate])
    let ack = SDSRequest(versionInfo: second.versionInfo, resourceNames: ["default"], responseNonce: second.nonce)
    #expect(try machine.receive(ack, served: self.cache.current).feedback == .ack(versionInfo: second.versionInfo))
  }

  @Test func aNewStreamGetsTheSecretsWhateverVersionAndNonceItCarries() throws {
    var machine = SDSStreamStateMachine(naming: Self.naming)
    let reconnect = SDSRequest(versionInfo: "999", resourceNames: ["default"], responseNonce: "41")
    let outcome = try machine.receive(reconnect, served: self.cache.current)
    #expect(outcome.feedback == .initial)
    #expect(outcome.response != nil)
  }

  @Test func changingTheNamesIsAnswered() throws {
    var machine = SDSStreamStateMachine(naming: Self.naming)
    let plan = try #require(
      try machine.receive(SDSRequest(resourceNames: ["default"]), served: self.cache.current).response)
    let request = SDSRequest(
      versionInfo: plan.versionInfo, resourceNames: ["default", "ROOTCA"], responseNonce: plan.nonce)
    let next = try #require(try machine.receive(request, served: self.cache.current).response)
    #expect(next.resources == [.tlsCertificate, .validationContext])
  }

  @Test func updatesArePushedOnlyToAffectedStreams() throws {
    var certificateStream = SDSStreamStateMachine(naming: Self.naming)
    var bundleStream = SDSStreamStateMachine(naming: Self.naming)
    _ = try certificateStream.receive(SDSRequest(resourceNames: ["default"]), served: self.cache.current)
    _ = try bundleStream.receive(SDSRequest(resourceNames: ["ROOTCA"]), served: self.cache.current)
    // A rotation with the same CA changes the certificate, not the bundle.
    try self.cache.update(with: Fixtures.issue())
    #expect(certificateStream.secretsChanged(self.cache.current) != nil)
    #expect(bundleStream.secretsChanged(self.cache.current) == nil)
  }

  @Test func nothingIsSentUntilEveryNameIsAvailable() throws {
    let empty = SecretCache()
    var machine = SDSStreamStateMachine(naming: Self.naming)
    #expect(try machine.receive(SDSRequest(resourceNames: ["default"]), served: empty.current).response == nil)
    try empty.update(with: Fixtures.issue())
    #expect(machine.secretsChanged(empty.current)?.resources == [RequestedSecret.tlsCertificate])
  }

  @Test func anUnknownNameNamesTheKnownOnes() {
    var machine = SDSStreamStateMachine(naming: Self.naming)
    #expect {
      try machine.receive(SDSRequest(resourceNames: ["default", "spiffe://x"]), served: self.cache.current)
    } throws: { error in
      let error = error as! SDSRequestError
      return error.code == .unknownResource && error.message.contains("\"spiffe://x\"")
        && error.message.contains("\"default\"") && error.message.contains("\"ROOTCA\"")
    }
  }

  @Test func anotherTypeIsRefused() {
    var machine = SDSStreamStateMachine(naming: Self.naming)
    let request = SDSRequest(resourceNames: ["default"], typeURL: "type.googleapis.com/envoy.config.cluster.v3.Cluster")
    #expect {
      try machine.receive(request, served: self.cache.current)
    } throws: { error in
      (error as! SDSRequestError).code == .unsupportedType
    }
  }

  @Test func aStreamIsAffectedOnlyByTheKindsOfWhatItAsksFor() throws {
    var certificate = SDSStreamStateMachine(naming: Self.naming)
    #expect(!certificate.isAffected(by: .all), "nothing is asked for yet")
    _ = try certificate.receive(SDSRequest(resourceNames: ["default"]), served: self.cache.current)
    #expect(certificate.isAffected(by: .svid))
    #expect(!certificate.isAffected(by: [.trustBundle, .federation, .files, .jwtSVIDs]))

    var roots = SDSStreamStateMachine(naming: Self.naming)
    _ = try roots.receive(SDSRequest(resourceNames: ["ROOTCA"]), served: self.cache.current)
    #expect(!roots.isAffected(by: .svid), "a certificate rotation does not wake a ROOTCA stream")
    #expect(roots.isAffected(by: .trustBundle))
    #expect(!roots.isAffected(by: .federation))

    var everyDomain = SDSStreamStateMachine(naming: Self.naming)
    _ = try everyDomain.receive(SDSRequest(resourceNames: ["ALL"]), served: self.cache.current)
    #expect(everyDomain.isAffected(by: .federation) && everyDomain.isAffected(by: .trustBundle))
    #expect(!everyDomain.isAffected(by: .svid))
  }
}
