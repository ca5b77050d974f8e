import Foundation
import Logging
import SDSAgentCore

extension FuzzTarget {
  /// The names a client may ask to have a certificate minted for: `DNSName` and `DNSNamePattern`
  /// on arbitrary text, and `OnDemandCertificates`' admission under a sequence of admits and
  /// releases. An accepted name is exactly the client's ASCII text lowercased and a valid host
  /// name; a held name is allowed by a pattern; the names held never exceed the cap, and a
  /// release never takes more than was held.
  static let onDemandName = FuzzTarget(
    name: "on-demand-name",
    summary: "DNSName, DNSNamePattern and OnDemandCertificates admit/release"
  ) { data in
    var input = FuzzInput(data)
    let patternTexts = (0...Int(input.byte() % 3)).map { _ in
      input.pick(["*.example.test", "api.example.test", "*.internal"]) { $0.string() }
    }
    var patterns: [DNSNamePattern] = []
    for text in patternTexts {
      guard let pattern = try? DNSNamePattern(parsing: text) else { continue }
      OnDemandNameChecks.check(pattern.base, parsedFrom: pattern.isWildcard ? String(text.dropFirst(2)) : text)
      FuzzTarget.check(
        pattern.description == text.lowercased(), "pattern \(text.debugDescription) prints as \(pattern)")
      patterns.append(pattern)
    }
    let settings = OnDemandSettings(
      patterns: patterns, maximumNames: 1 + Int(input.byte() % 4), rate: Rate(count: 1 << 20, period: .seconds(1)))
    let store = OnDemandNameChecks.store(settings)
    var held: [DNSName] = []
    var admitted = 0
    while !input.isEmpty {
      if input.byte() % 4 == 0, !held.isEmpty {
        store.release(held.remove(at: Int(input.byte()) % held.count))
      } else {
        let text = input.pick(["api.example.test", "a.example.test", "A.Example.Test", "x.y.example.test", "internal"])
        {
          $0.string()
        }
        let parsed = try? DNSName(parsing: text)
        if let parsed { OnDemandNameChecks.check(parsed, parsedFrom: text) }
        for pattern in patterns where parsed.map(pattern.matches) == true {
          let name = parsed!.name
          FuzzTarget.check(name.hasSuffix(pattern.base.name), "\(pattern) matched \(name)")
          if pattern.isWildcard {
            FuzzTarget.check(
              name.split(separator: ".").count == pattern.base.name.split(separator: ".").count + 1,
              "\(pattern) matched \(name), which is not one label more")
          } else {
            FuzzTarget.check(name == pattern.base.name, "\(pattern) matched \(name)")
          }
        }
        switch store.admit(text) {
        case .success(let name):
          FuzzTarget.check(
            name == parsed, "\(text.debugDescription) admitted as \(name), parsed as \(String(describing: parsed))")
          FuzzTarget.check(settings.allows(name), "\(name) admitted without a pattern allowing it")
          held.append(name)
          admitted += 1
        case .failure(.invalidName):
          FuzzTarget.check(parsed == nil, "\(text.debugDescription) refused as invalid but parses")
        case .failure(.notAllowed):
          FuzzTarget.check(
            parsed.map { !settings.allows($0) } ?? false, "\(text.debugDescription) refused as not allowed")
        case .failure:
          break
        }
      }
      let entries = store.entries
      FuzzTarget.check(
        entries.count <= settings.maximumNames, "\(entries.count) names held, cap \(settings.maximumNames)")
      FuzzTarget.check(entries.keys.allSatisfy(settings.allows), "a name held that no pattern allows")
      let holders = entries.values.map(\.holders).reduce(0, +)
      FuzzTarget.check(holders == held.count, "\(holders) holds recorded, \(held.count) taken")
    }
    return "\(patterns.count) pattern(s), \(admitted) name(s) admitted"
  }
}

enum OnDemandNameChecks {
  /// What a parsed name must be: the client's text, ASCII, lowercased; 2+ labels of 1–63 bytes of
  /// `a-z 0-9 -` (no hyphen at either end), 253 bytes at most, not an IP address.
  static func check(_ name: DNSName, parsedFrom text: String) {
    FuzzTarget.check(text.utf8.allSatisfy { $0 < 0x80 }, "\(text.debugDescription) is not ASCII but parsed as \(name)")
    FuzzTarget.check(name.name == text.lowercased(), "\(text.debugDescription) parsed as \(name)")
    FuzzTarget.check(name.name.utf8.count <= 253, "\(name) is longer than 253 bytes")
    let labels = name.name.split(separator: ".", omittingEmptySubsequences: false)
    FuzzTarget.check(labels.count >= 2, "\(name) has a single label")
    for label in labels {
      FuzzTarget.check((1...63).contains(label.utf8.count), "\(name) has a label of \(label.utf8.count) bytes")
      FuzzTarget.check(
        label.utf8.allSatisfy { (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == 0x2D }
          && label.first != "-" && label.last != "-", "\(name) has the label \(label)")
    }
    FuzzTarget.check(!labels.last!.allSatisfy(\.isNumber), "\(name) is an IP address")
  }

  /// The store under test: a CA it never uses (nothing runs its timer), a fixed time.
  static func store(_ settings: OnDemandSettings) -> OnDemandCertificates<ContinuousClock> {
    let now = Fixture.shared.now
    return OnDemandCertificates(
      settings: settings, ca: Fixture.shared.ca, table: Fixture.shared.table, counters: AgentCounters(),
      clock: ContinuousClock(), now: { now }, logger: Logger(label: "fuzz") { _ in SwiftLogNoOpLogHandler() })
  }

  private struct Fixture: Sendable {
    static let shared = Fixture()
    let now = Date()
    let ca: EmbeddedCA
    let table: IdentityTable

    init() {
      let material = try! CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now)
      self.ca = EmbeddedCA(EmbeddedCA.Roots(signing: material))
      self.table = IdentityTable(
        pinned: try! SPIFFEID(parsing: "spiffe://cluster.local/ns/fuzz/sa/fuzz"),
        template: IdentitySettings(keyType: .ecdsaP256, ttl: .seconds(3600)), idleTimeout: .seconds(600), now: self.now)
    }
  }
}
