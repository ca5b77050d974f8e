import Foundation
import SwiftProtobuf
import Synchronization

/// Holds the secrets the agent serves and tells subscribers when they change.
///
/// Subscribers get a change signal, not the secrets: each keeps only the newest signal
/// (`bufferingNewest(1)`) and reads `current` when it gets to it, so a slow SDS stream never
/// holds the cache back or piles up old certificates.
public final class SecretCache: Sendable {
  private struct State {
    var served = ServedSecrets.empty
    var nextRevision: UInt64 = 1
    var nextSubscriberID = 0
    var subscribers: [Int: @Sendable () -> Void] = [:]
  }

  private let state = Mutex(State())
  /// Each secret as responses carry it, encoded once per revision for every stream.
  private let encodings = Mutex<[RequestedSecret: (revision: UInt64, secret: Google_Protobuf_Any)]>([:])

  public init() {}

  /// `requested` at `revision`, packed as responses carry it: encoded by the first stream that
  /// sends it, copied by the others (a rotation pushes the same secret to every stream).
  func encoded(
    _ requested: RequestedSecret, revision: UInt64, encode: () throws -> Google_Protobuf_Any
  ) rethrows -> Google_Protobuf_Any {
    if let cached = self.encodings.withLock({ $0[requested] }), cached.revision == revision {
      return cached.secret
    }
    let secret = try encode()
    self.encodings.withLock { encodings in
      if encodings.count >= Self.encodingsKept { encodings.removeAll(keepingCapacity: true) }
      if (encodings[requested]?.revision ?? 0) <= revision { encodings[requested] = (revision, secret) }
    }
    return secret
  }

  /// Distinct requested names whose encodings are kept (names are bounded per request, not per
  /// identity); past it, the memo starts over.
  static let encodingsKept = 1024

  public var current: ServedSecrets {
    self.state.withLock { $0.served }
  }

  public var subscriberCount: Int {
    self.state.withLock { $0.subscribers.count }
  }

  /// Serves `svid` and its bundle, as the only bundle of its trust domain, from now on.
  public func update(with issued: IssuedSVID) throws(CertificateAuthorityError) {
    let trust: ServedTrust
    if let current = self.current.trust {
      trust = current.own == issued.trustBundle ? current : try current.replacingOwn(with: issued.trustBundle)
    } else {
      trust = try ServedTrust(ownDomain: TrustDomainName(of: issued.certifiedKey.identity), own: issued.trustBundle)
    }
    try self.update(with: issued.certifiedKey, trust: trust)
  }

  /// Serves `svid` and `trust` from now on; the bundles are pushed only if they changed.
  public func update(with svid: CertifiedKey, trust: ServedTrust) throws(CertificateAuthorityError) {
    // Encoded outside the lock, so subscribers never wait for PEM encoding.
    var encoded = ServedSecrets.empty
    try encoded.setSVID(svid)
    self.mutate { served, revision in
      served.adoptSVID(from: encoded)
      served.svidRevision = revision
      served.setTrust(trust, revision: revision)
    }
  }

  /// Serves `trust` from now on, with the same SVID; pushed only where it changed.
  public func updateTrust(_ trust: ServedTrust) {
    self.mutate { served, revision in
      served.setTrust(trust, revision: revision)
    }
  }

  /// Serves these file secrets from now on; pushed where one changed.
  public func updateFiles(_ contents: [String: FileSecretContent]) {
    self.mutate { served, revision in
      if served.setFiles(contents, revision: revision) { served.filesRevision = revision }
    }
  }

  /// Serves these on-demand server certificates from now on; pushed where one changed.
  public func updateOnDemand(_ certificates: [DNSName: ServerCertificate]) {
    self.mutate { served, revision in
      if served.setOnDemand(certificates, revision: revision) { served.onDemandRevision = revision }
    }
  }

  /// Stops serving the SVID, because it is expired and could not be renewed.
  public func withdrawSVID() {
    self.mutate { served, revision in
      guard served.svid != nil else { return }
      served.clearSVID()
      served.svidRevision = revision
    }
  }

  /// Calls `onChange` whenever the served secrets change, until the subscription is cancelled.
  /// `onChange` runs on the task that changed them and must not block.
  public func subscribe(_ onChange: @escaping @Sendable () -> Void) -> Subscription {
    let id = self.state.withLock { state in
      let id = state.nextSubscriberID
      state.nextSubscriberID += 1
      state.subscribers[id] = onChange
      return id
    }
    return Subscription(cache: self, id: id)
  }

  public struct Subscription: Sendable {
    fileprivate weak var cache: SecretCache?
    fileprivate let id: Int

    public func cancel() {
      _ = self.cache?.state.withLock { $0.subscribers.removeValue(forKey: self.id) }
    }
  }

  /// A stream that yields whenever the served secrets change; finishes when the caller stops
  /// iterating.
  public func changes() -> AsyncStream<Void> {
    let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    let subscription = self.subscribe { continuation.yield() }
    continuation.onTermination = { _ in subscription.cancel() }
    return stream
  }

  /// Waits until `predicate` holds for the served secrets, re-checking on every change.
  public func waitUntil(_ predicate: (ServedSecrets) -> Bool) async {
    let changes = self.changes()
    if predicate(self.current) { return }
    for await _ in changes where predicate(self.current) {
      return
    }
  }

  private static func revisions(_ served: ServedSecrets) -> [UInt64] {
    [
      served.svidRevision, served.trustBundleRevision, served.federationRevision, served.onDemandRevision,
      served.filesRevision,
    ]
  }

  private func mutate(_ body: (inout ServedSecrets, UInt64) -> Void) {
    let subscribers: [@Sendable () -> Void]? = self.state.withLock { state in
      let before = Self.revisions(state.served)
      body(&state.served, state.nextRevision)
      guard Self.revisions(state.served) != before else { return nil }
      state.nextRevision += 1
      return Array(state.subscribers.values)
    }
    for subscriber in subscribers ?? [] {
      subscriber()
    }
  }
}
