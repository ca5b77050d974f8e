import EnvoySDSProtos
import Foundation
import SDSAgentCore
import SwiftProtobuf

extension FuzzTarget {
  /// One `DeltaSecrets` stream's state machine under a program read from the input: Envoy's
  /// `DeltaDiscoveryRequest`s decoded from length-prefixed chunks, requests built from choices
  /// (subscribe, unsubscribe, initial versions, ACKs, NACKs, stale and forged nonces), refused
  /// on-demand names, and changes of the served secrets. Checked: the state stays bounded, the
  /// feedback matches the nonces sent, a response holds only what is subscribed and served at
  /// its version, and nothing is sent again while nothing changes (no resend loop).
  static let deltaStream = FuzzTarget(
    name: "delta-stream",
    summary: "DeltaStreamStateMachine under decoded and generated DeltaDiscoveryRequests and secret changes"
  ) { data in
    DeltaStreamUnderTest.run(data)
  }
}

/// The machine, the secrets it serves, and a model of what the stream was told.
private struct DeltaStreamUnderTest: FuzzedStream {
  typealias Message = Envoy_Service_Discovery_V3_DeltaDiscoveryRequest

  static func request(_ message: Message) -> DeltaRequest { DeltaRequest(message) }

  var responses: Int { self.sent.count }

  let cache = SecretCache()
  var machine = DeltaStreamStateMachine(naming: SDSStreamFixture.shared.naming)
  var started = false
  /// Every nonce sent on this stream, in order.
  var sent: [String] = []
  /// Nonces sent and not answered, oldest first, as the protocol allows the machine to keep them.
  /// Envoy answers responses in order, so an answer to one answers every older nonce too.
  var pending: [String] = []
  var requests = 0

  /// A new stream on the same served secrets.
  mutating func restart() {
    self.machine = DeltaStreamStateMachine(naming: SDSStreamFixture.shared.naming)
    self.started = false
    self.sent = []
    self.pending = []
  }

  mutating func receive(_ request: DeltaRequest) {
    let served = self.cache.current
    let outcome: DeltaStreamStateMachine.Outcome
    do {
      outcome = try self.machine.receive(request, served: served)
    } catch {
      // The stream ends with the error; a new one starts from nothing.
      self.restart()
      return
    }
    self.requests += 1
    let subscribed = self.machine.subscribed
    FuzzTarget.check(
      subscribed.count <= DeltaStreamStateMachine.maximumSubscriptions, "\(subscribed.count) subscriptions held")
    FuzzTarget.check(Set(subscribed).count == subscribed.count, "a name is subscribed twice")
    if !self.started {
      self.started = true
      FuzzTarget.check(
        outcome.feedback == .initial, "the first request was taken as \(String(describing: outcome.feedback))")
    } else if request.responseNonce.isEmpty {
      FuzzTarget.check(outcome.feedback == nil, "a request without a nonce was taken as feedback")
    } else if let index = self.pending.firstIndex(of: request.responseNonce) {
      self.pending.removeSubrange(...index)
      let expected: DeltaStreamStateMachine.Feedback =
        request.errorDetail.map { .nack(nonce: request.responseNonce, message: $0.message) }
        ?? .ack(nonce: request.responseNonce)
      FuzzTarget.check(outcome.feedback == expected, "feedback \(String(describing: outcome.feedback))")
    } else {
      FuzzTarget.check(
        outcome.feedback == .stale(nonce: request.responseNonce),
        "nonce \(request.responseNonce.debugDescription) is not pending but was taken as \(String(describing: outcome.feedback))"
      )
    }
    if let plan = outcome.response { self.check(plan, served: served) }
    self.checkQuiet(served: served)
  }

  mutating func secretsChanged() {
    let served = self.cache.current
    guard let plan = self.machine.secretsChanged(served) else { return }
    FuzzTarget.check(self.started, "a push to a stream that never asked")
    self.check(plan, served: served)
    self.checkQuiet(served: served)
  }

  /// No resend loop: with nothing changed, the machine has nothing more to send.
  private func checkQuiet(served: ServedSecrets) {
    var probe = self.machine
    FuzzTarget.check(probe.secretsChanged(served) == nil, "a second response with nothing changed")
  }

  private mutating func check(_ plan: DeltaResponsePlan, served: ServedSecrets) {
    let names = Set(self.machine.subscribed.map(\.name))
    FuzzTarget.check(!plan.resources.isEmpty || !plan.removed.isEmpty, "an empty response")
    for item in plan.resources {
      FuzzTarget.check(names.contains(item.secret.name), "\(item.secret.name) was sent but is not subscribed")
      FuzzTarget.check(served.isAvailable(item.secret.resource), "\(item.secret.name) was sent but is not served")
      FuzzTarget.check(
        item.version == String(served.revision(of: item.secret.resource)),
        "\(item.secret.name) sent at version \(item.version), served at \(served.revision(of: item.secret.resource))")
    }
    FuzzTarget.check(Set(plan.resources.map(\.secret.name)).count == plan.resources.count, "a name sent twice")
    for name in plan.removed {
      FuzzTarget.check(names.contains(name), "\(name) removed but never subscribed")
    }
    FuzzTarget.check(!self.sent.contains(plan.nonce), "nonce \(plan.nonce) used twice in a stream")
    FuzzTarget.check(
      UInt64(plan.nonce).map { $0 > UInt64(self.sent.last ?? "0")! } ?? false, "nonce \(plan.nonce) does not grow")
    self.sent.append(plan.nonce)
    self.pending.append(plan.nonce)
    // What the machine keeps at most; older nonces are then stale, which the model must agree on.
    if self.pending.count > 16 { self.pending.removeFirst() }
  }

  /// A request whose fields are picked from what matters to the machine, or read raw.
  func generatedRequest(_ input: inout FuzzInput) -> DeltaRequest {
    let naming = SDSStreamFixture.shared.naming
    let names =
      SecretResource.knownNames + [
        naming.identity.description, "spiffe://\(naming.identity.trustDomain)",
        "spiffe://\(naming.identity.trustDomain)/ns/other/sa/other", "api.example.test", "file-cert:/etc/x",
      ]
    let pick: (inout FuzzInput) -> [String] = { input in
      (0..<Int(input.byte() % 4)).map { _ in input.pick(names) { $0.string() } }
    }
    let subscribe = pick(&input)
    let unsubscribe = pick(&input)
    let initial = Dictionary(pick(&input).map { ($0, String(input.byte() % 4)) }, uniquingKeysWith: { $1 })
    let nonces = [self.sent.last ?? "", self.sent.last ?? "", self.sent.first ?? "1", "", "999"]
    var request = DeltaRequest(
      typeURL: input.pick([SecretResource.typeURL, SecretResource.typeURL, ""]) { $0.string() },
      subscribe: subscribe,
      unsubscribe: unsubscribe,
      initialVersions: initial,
      responseNonce: input.pick(nonces) { $0.string() },
      errorDetail: input.byte() % 3 == 0 ? SDSRequest.ErrorDetail(code: 3, message: input.string()) : nil,
      nodeID: input.byte() % 2 == 0 ? input.string() : nil,
      disablesSPIFFEValidator: input.byte() % 4 == 0
    )
    if input.byte() % 4 == 0 { request.refused = Set(subscribe.prefix(Int(input.byte() % 3))) }
    return request
  }
}
