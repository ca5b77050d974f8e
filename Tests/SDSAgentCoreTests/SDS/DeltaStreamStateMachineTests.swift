import Foundation
import SDSAgentCore
import SDSAgentTestSupport
import Testing

/// The incremental protocol as a value: only what the client lacks is sent, ACK/NACK by nonce.
@Suite struct DeltaStreamStateMachineTests {
  static let naming = SecretNaming(identity: try! SPIFFEID(parsing: "spiffe://cluster.local/ns/default/sa/default"))
  let cache: SecretCache

  init() throws {
    self.cache = SecretCache()
    try self.cache.update(with: Fixtures.issue())
  }

  var served: ServedSecrets { self.cache.current }

  @Test func aSubscriptionGetsEachNameOnceWithItsVersion() throws {
    var machine = DeltaStreamStateMachine(naming: Self.naming)
    let outcome = try machine.receive(DeltaRequest(subscribe: ["default", "ROOTCA", "default"]), served: self.served)
    #expect(outcome.feedback == .initial)
    let plan = try #require(outcome.response)
    #expect(plan.resources.map(\.secret) == [.tlsCertificate, .validationContext])
    #expect(plan.resources.map(\.version) == ["\(self.served.svidRevision)", "\(self.served.trustBundleRevision)"])
    #expect(plan.removed.isEmpty && !plan.nonce.isEmpty)
  }

  @Test func anACKIsNotAnsweredAndAChangeSendsOnlyWhatChanged() throws {
    var machine = DeltaStreamStateMachine(naming: Self.naming)
    let plan = try #require(
      try machine.receive(DeltaRequest(subscribe: ["default", "ROOTCA"]), served: self.served).response)
    let ack = try machine.receive(DeltaRequest(responseNonce: plan.nonce), served: self.served)
    #expect(ack.feedback == .ack(nonce: plan.nonce))
    #expect(ack.response == nil)
    try self.cache.update(with: Fixtures.issue())
    let changed = machine.secretsChanged(self.served)
    let pushed = try #require(changed)
    #expect(pushed.resources.map(\.secret.name) == ["default"])
    let again = machine.secretsChanged(self.served)
    #expect(again == nil)
  }

  @Test func versionsTheClientHoldsAreNotSentAgain() throws {
    var machine = DeltaStreamStateMachine(naming: Self.naming)
    let held = ["default": "\(self.served.svidRevision)", "ROOTCA": "0"]
    let plan = try #require(
      try machine.receive(DeltaRequest(subscribe: ["default", "ROOTCA"], initialVersions: held), served: self.served)
        .response)
    #expect(plan.resources.map(\.secret.name) == ["ROOTCA"])
  }

  @Test func anUnsubscribedNameIsForgottenAndSentAgainOnResubscription() throws {
    var machine = DeltaStreamStateMachine(naming: Self.naming)
    _ = try machine.receive(DeltaRequest(subscribe: ["default", "ROOTCA"]), served: self.served)
    let unsubscribed = try machine.receive(DeltaRequest(unsubscribe: ["ROOTCA"]), served: self.served)
    #expect(unsubscribed.response == nil)
    #expect(machine.subscribed == [.tlsCertificate])
    let again = try #require(try machine.receive(DeltaRequest(subscribe: ["ROOTCA"]), served: self.served).response)
    #expect(again.resources.map(\.secret.name) == ["ROOTCA"])
  }

  @Test func aNACKIsReportedAndTheSamePayloadIsNotResent() throws {
    var machine = DeltaStreamStateMachine(naming: Self.naming)
    let plan = try #require(try machine.receive(DeltaRequest(subscribe: ["default"]), served: self.served).response)
    let nack = try machine.receive(
      DeltaRequest(responseNonce: plan.nonce, errorDetail: .init(code: 3, message: "bad key")), served: self.served)
    #expect(nack.feedback == .nack(nonce: plan.nonce, message: "bad key"))
    #expect(nack.response == nil)
    let stale = try machine.receive(DeltaRequest(responseNonce: plan.nonce), served: self.served)
    #expect(stale.feedback == .stale(nonce: plan.nonce))
  }

  @Test func limitsAndNamesAreEnforced() throws {
    var machine = DeltaStreamStateMachine(naming: Self.naming)
    #expect(throws: SDSRequestError.self) {
      try machine.receive(DeltaRequest(subscribe: ["spiffe://cluster.local/ns/a/sa/b"]), served: self.served)
    }
    var other = DeltaStreamStateMachine(naming: Self.naming)
    #expect(throws: SDSRequestError.self) {
      try other.receive(DeltaRequest(typeURL: "type.googleapis.com/other"), served: self.served)
    }
    var many = DeltaStreamStateMachine(naming: Self.naming)
    let initial = Dictionary(
      uniqueKeysWithValues: (0...DeltaStreamStateMachine.maximumSubscriptions).map { ("n\($0)", "1") })
    #expect(throws: SDSRequestError.self) {
      try many.receive(DeltaRequest(initialVersions: initial), served: self.served)
    }
  }

  @Test func aClientThatNeverAnswersKeepsOnlyTheNewestNonces() throws {
    var machine = DeltaStreamStateMachine(naming: Self.naming)
    let first = try #require(try machine.receive(DeltaRequest(subscribe: ["default"]), served: self.served).response)
    for _ in 0..<20 {
      try self.cache.update(with: Fixtures.issue())
      _ = machine.secretsChanged(self.served)
    }
    #expect(
      try machine.receive(DeltaRequest(responseNonce: first.nonce), served: self.served).feedback
        == .stale(nonce: first.nonce))
  }

  /// Envoy answers responses in order: an ACK of a newer nonce answers the older ones, and a
  /// late answer to one of those is stale (the fuzzer's finding `crash-ack-answers-older-nonces`).
  @Test func anAnswerToANewerNonceAnswersTheOlderOnes() throws {
    var machine = DeltaStreamStateMachine(naming: Self.naming)
    let first = try #require(try machine.receive(DeltaRequest(subscribe: ["default"]), served: self.served).response)
    try self.cache.update(with: Fixtures.issue())
    let changed = machine.secretsChanged(self.served)
    let second = try #require(changed)
    #expect(
      try machine.receive(DeltaRequest(responseNonce: second.nonce), served: self.served).feedback
        == .ack(nonce: second.nonce))
    #expect(
      try machine.receive(DeltaRequest(responseNonce: first.nonce), served: self.served).feedback
        == .stale(nonce: first.nonce))
  }

  // MARK: - Bounds on what a client fills (issue #21, class 3)

  @Test func initialVersionsNamesAreBoundedInLengthAsSubscriptionsAre() throws {
    var machine = DeltaStreamStateMachine(naming: Self.naming)
    let long = String(repeating: "a", count: SDSRequest.maximumNameLength + 1)
    #expect {
      try machine.receive(DeltaRequest(subscribe: ["default"], initialVersions: [long: "1"]), served: self.served)
    } throws: { error in
      (error as? SDSRequestError)?.code == .invalidName && "\(error)".contains("(+")
    }
  }

  @Test func initialVersionsAreBoundedInCountAsSubscriptionsAre() throws {
    var machine = DeltaStreamStateMachine(naming: Self.naming)
    let many = Dictionary(
      uniqueKeysWithValues: (0...DeltaStreamStateMachine.maximumSubscriptions).map { ("n\($0)", "1") })
    #expect {
      try machine.receive(DeltaRequest(subscribe: ["default"], initialVersions: many), served: self.served)
    } throws: { error in
      (error as? SDSRequestError)?.code == .tooManyNames
    }
  }
}
