/// Which TLS server certificates the agent mints on demand, named by the SNI Envoy asks for.
package struct OnDemandSettings: Sendable, Equatable {
  package var patterns: [DNSNamePattern]
  package var ttl: Duration
  package var keyType: WorkloadKeyType
  /// The most names held at once.
  package var maximumNames: Int
  /// New names minted, at most.
  package var rate: Rate
  /// A name no stream has asked for this long is dropped.
  package var idleTimeout: Duration
  /// The identities whose streams may ask for on-demand names; `nil`: every caller (the agent
  /// serves one identity to all).
  package var callers: Set<SPIFFEID>?

  package init(
    patterns: [DNSNamePattern], ttl: Duration = .seconds(86400), keyType: WorkloadKeyType = .ecdsaP256,
    maximumNames: Int = 1000, rate: Rate = Rate(count: 60, period: .seconds(60)),
    idleTimeout: Duration = .seconds(600), callers: Set<SPIFFEID>? = nil
  ) {
    self.callers = callers
    self.patterns = patterns
    self.ttl = ttl
    self.keyType = keyType
    self.maximumNames = maximumNames
    self.rate = rate
    self.idleTimeout = idleTimeout
  }

  package func allows(_ name: DNSName) -> Bool {
    self.patterns.contains { $0.matches(name) }
  }

  /// Whether streams of `caller` may ask for on-demand names.
  package func allows(caller: SPIFFEID) -> Bool {
    self.callers.map { $0.contains(caller) } ?? true
  }
}

/// Why an on-demand name is not served; a closed set, for metric labels.
package enum OnDemandRefusal: String, AgentFailure, Sendable, CaseIterable {
  case invalidName = "invalid_name"
  case notAllowed = "not_allowed"
  case overCap = "over_cap"
  case overRate = "over_rate"
  /// Over the cap or the rate while `OnDemandCertificates.maximumWaiting` names are waited for
  /// already: refused for good, as `notAllowed` is.
  case overWaiting = "over_waiting"

  /// Over the cap or the rate: the name is minted once both allow, and sent then.
  package var isTransient: Bool { self == .overCap || self == .overRate }

  package var code: Self { self }

  package var message: String {
    switch self {
    case .invalidName: "the name is not a DNS name"
    case .notAllowed: "the name is not one on-demand certificates are minted for"
    case .overCap: "as many on-demand certificates as allowed are held"
    case .overRate: "on-demand certificates are minted faster than allowed"
    case .overWaiting: "too many names wait for the cap or the rate already"
    }
  }

  package var remedy: String? {
    switch self {
    case .invalidName, .notAllowed: "ask for a name the on-demand patterns allow"
    case .overCap, .overRate: "the name is minted once the cap and the rate allow"
    case .overWaiting: "ask again later"
    }
  }

  package var description: String { "\(self.rawValue): \(self.message)" }
}
