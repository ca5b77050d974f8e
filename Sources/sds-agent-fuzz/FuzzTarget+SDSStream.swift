import EnvoySDSProtos
import Foundation
import SDSAgentCore
import SwiftProtobuf

extension FuzzTarget {
  /// One SDS stream's state machine driven by a program read from the input: Envoy's
  /// `DiscoveryRequest`s decoded from length-prefixed chunks, requests built from choices
  /// (names, nonces, versions, NACKs), and changes of the served secrets. Every response plan
  /// is checked against what the stream asked for and what is served.
  static let sdsStream = FuzzTarget(
    name: "sds-stream",
    summary: "SDSStreamStateMachine under decoded and generated DiscoveryRequests and secret changes"
  ) { data in
    StreamUnderTest.run(data)
  }
}

/// The machine, the secrets it serves, and what the test knows the stream was told.
private struct StreamUnderTest: FuzzedStream {
  typealias Message = Envoy_Service_Discovery_V3_DiscoveryRequest

  static func request(_ message: Message) -> SDSRequest { SDSRequest(message) }

  var responses: Int { self.nonces.count }

  let cache = SecretCache()
  var machine = SDSStreamStateMachine(naming: SDSStreamFixture.shared.naming)
  /// The names of the last request the machine accepted (not stale, not refused).
  var acceptedNames: [String]?
  var lastPlan: SDSResponsePlan?
  var nonces: [String] = []
  var requests = 0

  mutating func restart() {
    self.machine = SDSStreamStateMachine(naming: SDSStreamFixture.shared.naming)
    self.acceptedNames = nil
    self.lastPlan = nil
    self.nonces = []
  }

  mutating func receive(_ request: SDSRequest) {
    let served = self.cache.current
    let outcome: SDSStreamStateMachine.Outcome
    do {
      outcome = try self.machine.receive(request, served: served)
    } catch {
      return
    }
    self.requests += 1
    switch outcome.feedback {
    case .stale(let nonce):
      FuzzTarget.check(self.lastPlan != nil && nonce != self.lastPlan?.nonce, "\(nonce) is not stale")
      FuzzTarget.check(outcome.response == nil, "a stale request was answered")
      return
    case .initial:
      FuzzTarget.check(self.lastPlan == nil, "a request after a response was taken for the first")
    case .ack, .nack:
      FuzzTarget.check(request.responseNonce == self.lastPlan?.nonce, "feedback for an unknown nonce")
      if case .nack = outcome.feedback {
        FuzzTarget.check(request.errorDetail != nil, "a NACK without error_detail")
      } else {
        FuzzTarget.check(request.errorDetail == nil, "an ACK with error_detail")
      }
    case nil:
      FuzzTarget.check(false, "an accepted request without feedback")
    }
    self.acceptedNames = request.resourceNames.isEmpty ? SecretResource.knownNames : request.resourceNames
    if let plan = outcome.response {
      self.checkPlan(plan, served: served)
    }
  }

  mutating func secretsChanged() {
    let served = self.cache.current
    guard let plan = self.machine.secretsChanged(served) else { return }
    FuzzTarget.check(self.acceptedNames != nil, "a push to a stream that asked for nothing")
    self.checkPlan(plan, served: served)
  }

  private mutating func checkPlan(_ plan: SDSResponsePlan, served: ServedSecrets) {
    let asked = self.acceptedNames ?? []
    for resource in plan.resources {
      FuzzTarget.check(asked.contains(resource.name), "\(resource.name) was sent but the stream asked for \(asked)")
      FuzzTarget.check(served.isAvailable(resource.resource), "\(resource.name) was sent but is not served")
    }
    FuzzTarget.check(!plan.resources.isEmpty, "an empty response")
    FuzzTarget.check(plan.resources == self.machine.subscribedResources, "a response for other resources")
    let revision = plan.resources.map { served.revision(of: $0.resource) }.max() ?? 0
    FuzzTarget.check(plan.versionInfo == String(revision), "version \(plan.versionInfo) for revision \(revision)")
    FuzzTarget.check(!self.nonces.contains(plan.nonce), "nonce \(plan.nonce) used twice in a stream")
    if let last = self.lastPlan, last.resources == plan.resources {
      // Served revisions only grow here, so the same resources never go back to an older version.
      FuzzTarget.check(
        UInt64(plan.versionInfo)! >= UInt64(last.versionInfo)!,
        "version went back from \(last.versionInfo) to \(plan.versionInfo)")
    }
    self.nonces.append(plan.nonce)
    self.lastPlan = plan
  }

  /// A request whose fields are picked from what matters to the machine, or read raw.
  func generatedRequest(_ input: inout FuzzInput) -> SDSRequest {
    let naming = SDSStreamFixture.shared.naming
    let names =
      SecretResource.knownNames + [
        naming.identity.description, "spiffe://\(naming.identity.trustDomain)",
        "spiffe://\(naming.identity.trustDomain)/ns/other/sa/other", "spiffe://other.domain",
      ]
    let count = Int(input.byte() % 4)
    let resourceNames = (0..<count).map { _ in input.pick(names) { $0.string() } }
    let lastNonce = self.lastPlan?.nonce ?? ""
    let earlierNonce = self.nonces.dropLast().last ?? "0"
    return SDSRequest(
      versionInfo: input.pick([self.lastPlan?.versionInfo ?? "", ""]) { $0.string() },
      resourceNames: resourceNames,
      typeURL: input.pick([SecretResource.typeURL, SecretResource.typeURL, ""]) { $0.string() },
      responseNonce: input.pick([lastNonce, lastNonce, earlierNonce, ""]) { $0.string() },
      errorDetail: input.byte() % 3 == 0 ? SDSRequest.ErrorDetail(code: 3, message: input.string()) : nil,
      nodeID: input.byte() % 2 == 0 ? input.string() : nil
    )
  }
}

/// The workload of the fuzzed stream and SVIDs to serve it: two from one CA, one from another,
/// so updates change the certificate alone or with the trust bundle.
struct SDSStreamFixture: Sendable {
  static let shared = SDSStreamFixture()

  let naming = SecretNaming(identity: try! SPIFFEID(parsing: "spiffe://cluster.local/ns/fuzz/sa/fuzz"))
  let svids: [IssuedSVID]

  init() {
    let now = Date()
    let key = WorkloadPrivateKey(p256: FuzzKey.p256)
    let identity = self.naming.identity
    let first = LocalCA(material: try! CAMaterial.generateRoot(trustDomain: "cluster.local", now: now))
    let second = LocalCA(material: try! CAMaterial.generateRoot(trustDomain: "cluster.local", now: now))
    self.svids = [first, first, second].map { ca in
      try! ca.certify(identity: identity, privateKey: key, ttl: .seconds(3600), now: now)
    }
  }
}
