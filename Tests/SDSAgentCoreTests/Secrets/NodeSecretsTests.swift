import Foundation
import SDSAgentCore
import SDSAgentTestSupport
import Synchronization
import Testing

/// Secrets every identity serves (file secrets, on-demand certificates, trust) are one row for
/// the node: a change is one revision, however many identities are held, and every identity's
/// view joins it.
@Suite struct NodeSecretsTests {
  static let workloads = (1...4).map { try! SPIFFEID(parsing: "spiffe://cluster.local/ns/w\($0)/sa/app") }
  static let otherRoot = try! CAMaterial.generateRoot(trustDomain: "cluster.local", now: Fixtures.now)
  static let federatedRoot = try! CAMaterial.generateRoot(trustDomain: "partner.org", now: Fixtures.now)

  let table: IdentityTable
  let caches: [SecretCache]
  /// How many times each cache's subscriber was signalled, by index in `caches`.
  let signals = Signals()

  final class Signals: Sendable {
    private let counts = Mutex<[Int: Int]>([:])

    func signal(_ index: Int) { self.counts.withLock { $0[index, default: 0] += 1 } }

    var counted: [Int: Int] { self.counts.withLock { $0 } }
  }

  init() throws {
    let settings = IdentitySettings(
      keyType: .ecdsaP256, ttl: .seconds(3600), schedule: RotationSchedule(ratio: 0.5, jitter: 0),
      backoff: Backoff(initial: .seconds(4), maximum: .seconds(4)))
    let table = IdentityTable(
      pinned: Fixtures.identity, template: settings, idleTimeout: .seconds(600), now: Fixtures.now)
    try table.installTrustBundle(TrustBundle(roots: [Fixtures.material.certificate]))
    for workload in Self.workloads {
      _ = table.openStream(workload, credential: .agent, now: Fixtures.now)
    }
    self.table = table
    self.caches = table.identities.compactMap { table.cache(for: $0) }
    for cache in self.caches {
      try cache.update(with: try Fixtures.issue().certifiedKey, trust: nil)
    }
  }

  static func validationContext(_ root: CAMaterial) throws -> FileSecretContent {
    try FileSecretContent.validationContext(caPEM: try root.certificate.pemString(), now: Fixtures.now)
  }

  /// Subscribes to every cache; the subscriptions end with `body`.
  func subscribed(_ body: () throws -> Void) throws {
    let subscriptions = self.caches.enumerated().map { index, cache in
      cache.subscribe { [signals] _ in signals.signal(index) }
    }
    defer { subscriptions.forEach { $0.cancel() } }
    #expect(self.table.node.subscriberCount == self.caches.count)
    try body()
  }

  @Test func aFileChangeIsOneRevisionThatEveryIdentitySees() throws {
    #expect(self.caches.count == Self.workloads.count + 1)
    let first = try Self.validationContext(Fixtures.material)
    let second = try Self.validationContext(Self.otherRoot)
    self.table.installFiles(["partner-ca": first])
    let before = self.caches.map(\.current)
    let revisionBefore = self.table.node.revision

    try self.subscribed {
      self.table.installFiles(["partner-ca": second])
    }

    let after = self.caches.map(\.current)
    // One change took one revision: had each identity been given a copy, it would have taken one each.
    #expect(self.table.node.revision == revisionBefore + 1)
    for served in after {
      #expect(served.files["partner-ca"]?.content == second)
      #expect(served.files["partner-ca"]?.revision == self.table.node.revision)
      #expect(served.filesRevision == self.table.node.revision)
    }
    for (old, new) in zip(before, after) {
      #expect(new.revision(of: .tlsCertificate) == old.revision(of: .tlsCertificate))
      #expect(new.revision(of: .validationContext) == old.revision(of: .validationContext))
    }
    #expect(self.signals.counted == Dictionary(uniqueKeysWithValues: self.caches.indices.map { ($0, 1) }))
    #expect(self.table.node.subscriberCount == 0)
    #expect(self.caches.allSatisfy { $0.subscriberCount == 0 })
  }

  @Test func aFileChangeIsPushedOnlyToStreamsThatAskForTheFile() throws {
    let naming = SecretNaming(identity: Self.workloads[0], files: ["partner-ca"])
    let cache = try #require(self.table.cache(for: Self.workloads[0]))
    self.table.installFiles(["partner-ca": try Self.validationContext(Fixtures.material)])
    var certificateOnly = SDSStreamStateMachine(naming: naming)
    var withFile = SDSStreamStateMachine(naming: naming)
    let sent = try #require(
      try certificateOnly.receive(SDSRequest(resourceNames: ["default", "ROOTCA"]), served: cache.current).response)
    _ = try withFile.receive(SDSRequest(resourceNames: ["default", "partner-ca"]), served: cache.current)

    self.table.installFiles(["partner-ca": try Self.validationContext(Self.otherRoot)])

    #expect(certificateOnly.secretsChanged(cache.current) == nil)
    let changed = withFile.secretsChanged(cache.current)
    let pushed = try #require(changed)
    #expect(pushed.versionInfo == String(self.table.node.revision))
    #expect(sent.versionInfo != pushed.versionInfo)
  }

  @Test func anOnDemandChangeIsOneRevision() throws {
    let revisionBefore = self.table.node.revision
    let name = try DNSName(parsing: "api.example.com")
    let minted = try Fixtures.issue().certifiedKey
    let certificate = try ServerCertificate(
      name: name, chain: minted.chain, privateKey: minted.privateKey, issuedAt: Fixtures.now)
    try self.subscribed {
      self.table.installOnDemand([name: certificate])
    }
    #expect(self.table.node.revision == revisionBefore + 1)
    #expect(self.caches.allSatisfy { $0.current.onDemand[name]?.certificate.serial == certificate.serial })
    #expect(self.signals.counted.values.reduce(0, +) == self.caches.count)
  }

  @Test func aTrustChangeIsOneRevisionThatEveryIdentitySees() throws {
    let before = self.caches.map(\.current)
    let revisionBefore = self.table.node.revision
    let rotated = TrustBundle(roots: [Fixtures.material.certificate, Self.otherRoot.certificate])

    try self.subscribed {
      try self.table.installTrustBundle(rotated)
    }

    #expect(self.table.node.revision == revisionBefore + 1)
    for (old, new) in zip(before, self.caches.map(\.current)) {
      #expect(new.trustBundle == rotated)
      #expect(new.trustBundleRevision == self.table.node.revision)
      #expect(new.svidRevision == old.svidRevision)
      #expect(new.federationRevision == old.federationRevision)
    }
    #expect(self.signals.counted.values.reduce(0, +) == self.caches.count)

    let federated = try TrustDomainName(parsing: "partner.org")
    try self.table.installFederatedBundles([federated: TrustBundle(roots: [Self.federatedRoot.certificate])])
    #expect(self.table.node.revision == revisionBefore + 2)
    for served in self.caches.map(\.current) {
      #expect(served.trust?.domains.contains(federated) == true)
      #expect(served.federationRevision == self.table.node.revision)
      #expect(served.trustBundleRevision == revisionBefore + 1)
    }
  }

  @Test func anIssuanceNeverBringsBackTheBundleItCameWith() throws {
    let rotated = TrustBundle(roots: [Fixtures.material.certificate, Self.otherRoot.certificate])
    try self.table.installTrustBundle(rotated)
    let cache = self.table.pinnedCache
    try cache.update(with: Fixtures.issue())
    #expect(cache.current.trustBundle == rotated)
  }
}
