import Foundation
import SDSAgentCore

/// The admin endpoint's view of trust: `GET /debug/trust` and `POST /ca/rotate-root`, for the
/// agent and for `ca serve`.
package struct TrustRoutes: Sendable {
  let rotation: RootRotationSupervisor<ContinuousClock>?
  let trustDomain: String
  /// Why this agent cannot rotate its root, if it cannot.
  let notRotatable: String?
  /// The bundle of the own trust domain, as served now.
  private let servedBundle: @Sendable () -> TrustBundle?
  /// The federated trust domains, as configured, with their bundles.
  private let federated: @Sendable () -> [FederatedBundleWatcher.Entry]
  /// The revocation lists served with the own bundle.
  private let revocationLists: @Sendable () -> [CertificateRevocationList]
  /// Why some own contexts carry no revocation list while others do, if so.
  private var revocationGap: @Sendable () -> String? = { nil }

  /// The agent's: the bundle its identities are served, and its federated domains.
  init(
    rotation: RootRotationSupervisor<ContinuousClock>?, identities: IdentityTable, federation: FederatedBundleWatcher,
    notRotatable: String?
  ) {
    self.rotation = rotation
    self.trustDomain = identities.ownTrustDomain.name
    self.notRotatable = notRotatable
    self.servedBundle = { identities.installedTrustBundle ?? identities.pinnedCache.current.trustBundle }
    self.federated = { federation.current }
    self.revocationLists = { identities.servedRevocationLists }
    self.revocationGap = { identities.revocationGap }
  }

  /// `ca serve`'s: the bundle of its CA, which every answer carries, and the lists its
  /// revocation host answers `GET /ca/crl` with.
  package init(
    rotation: RootRotationSupervisor<ContinuousClock>?, ca: EmbeddedCA, trustDomain: String, notRotatable: String?,
    revocationLists: @escaping @Sendable () -> [CertificateRevocationList] = { [] }
  ) {
    self.rotation = rotation
    self.trustDomain = trustDomain
    self.notRotatable = notRotatable
    self.servedBundle = { ca.trustBundle }
    self.federated = { [] }
    self.revocationLists = revocationLists
  }

  /// The bundle of the own trust domain, as served.
  var ownBundle: TrustBundle? { self.servedBundle() }

  /// Roots per trust domain served, for `sds_agent_trust_bundle_roots`.
  var rootCounts: [String: Int] {
    var counts = Dictionary(
      uniqueKeysWithValues: self.federated().compactMap { entry in
        entry.bundle.map { (entry.source.trustDomain.name, $0.roots.count) }
      })
    counts[self.trustDomain] = self.ownBundle?.roots.count
    return counts
  }

  /// Certificates revoked by the lists served, per trust domain, for `sds_agent_crl_entries`: the
  /// own domain's (from the configuration), while lists are served. Every list names every
  /// revoked serial of its CA, so a serial listed by two roots counts once.
  var revocationListEntries: [String: Int] {
    let lists = self.revocationLists()
    guard !lists.isEmpty else { return [:] }
    return [self.trustDomain: Set(lists.flatMap { $0.entries.map(\.serial) }).count]
  }

  /// Starts a staged root rotation; `overlap` (a duration) overrides the configured one for it.
  package func rotateRoot(overlap: String?) -> AdminResponse {
    guard let rotation = self.rotation else {
      return .text(409, "cannot rotate the root: \(self.notRotatable ?? "no embedded CA")\n")
    }
    var chosen: Duration?
    if let overlap {
      guard let parsed = DurationParser.parse(overlap, in: .seconds(1) ... .seconds(365 * 86400)) else {
        return .text(400, "invalid overlap \"\(BoundedText(overlap))\": expected a duration from 1s to 365d\n")
      }
      chosen = parsed
    }
    do {
      _ = try rotation.start(overlap: chosen)
    } catch {
      let status =
        switch error.code {
        case .inProgress, .notRotatable: 409
        case .overlapTooShort: 400
        case .storage, .generation: 500
        }
      return .text(status, "cannot rotate the root: \(error)\n")
    }
    return .json(self.describe(), status: 202)
  }

  /// Each root with its role, the rotation's phase and when its next step is due.
  package func describe(now: Date = Date()) -> AdminAPI.Trust {
    let current = self.rotation?.current
    var trust = AdminAPI.Trust(
      trustDomain: self.trustDomain,
      roots: (self.ownBundle?.roots ?? []).map { root in
        AdminAPI.Trust.Root(
          subject: "\(root.subject)", serial: root.serialHex, notBefore: root.notValidBefore,
          notAfter: root.notValidAfter, phase: Self.phase(of: root.serialHex, in: current))
      },
      federated: self.federated().map(Self.describe),
      phase: AdminAPI.Trust.Phase(current),
      rotatable: self.rotation != nil)
    let roots = self.ownBundle?.roots ?? []
    let lists = self.revocationLists().map { AdminAPI.RevocationList($0, roots: roots) }
    trust.revocationLists = lists.isEmpty ? nil : lists
    trust.revocationGap = self.revocationGap()
    if let current {
      let awaited = self.rotation?.streamsAwaited ?? []
      trust.rotation = AdminAPI.Trust.Rotation(
        preparedAt: current.preparedAt, overlap: DurationParser.format(current.overlap),
        switchAt: current.switchAt, switchDeadline: current.switchDeadline,
        newRoot: current.nextRootSerial, oldRoot: current.previousRootSerial,
        streamsAwaited: current.phase == .prepared ? awaited.count : nil,
        switchedAt: current.switchedAt, retireAt: current.retireAt,
        nextStep: .init(
          step: current.phase == .prepared ? .switch : .retire,
          at: current.nextDeadline(now: now, acknowledged: awaited.isEmpty)))
    } else {
      trust.notRotatable = self.notRotatable
    }
    return trust
  }

  /// A federated trust domain as `/debug/trust` lists it.
  static func describe(_ entry: FederatedBundleWatcher.Entry) -> AdminAPI.Trust.Federated {
    AdminAPI.Trust.Federated(
      trustDomain: entry.source.trustDomain.name,
      file: entry.source.path,
      served: entry.bundle != nil,
      roots: (entry.bundle?.roots ?? []).map {
        AdminAPI.Root(subject: "\($0.subject)", serial: $0.serialHex, notAfter: $0.notValidAfter)
      },
      lastError: entry.lastError)
  }

  /// A root's part in the rotation.
  static func phase(of serial: String, in rotation: RootRotation?) -> AdminAPI.Trust.Role {
    guard let rotation else { return .trusted }
    switch (rotation.phase, serial) {
    case (.prepared, rotation.nextRootSerial): return .next
    case (.prepared, rotation.previousRootSerial): return .signing
    case (.switched, rotation.nextRootSerial): return .signing
    case (.switched, rotation.previousRootSerial): return .previous
    default: return .trusted
    }
  }
}
