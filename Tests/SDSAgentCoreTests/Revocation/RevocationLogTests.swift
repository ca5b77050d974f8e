import Foundation
import Logging
import SDSAgentCore
import SDSAgentTestSupport
import Synchronization
import Testing

/// Each certificate revoked is logged once, at `notice`, with its serial, its identity and the
/// reason, and no log line of a revocation carries key material.
@Suite struct RevocationLogTests {
  struct Line: Sendable {
    let level: Logger.Level
    let message: String
    let metadata: [String: String]

    var text: String { ([self.message] + self.metadata.map { "\($0.key)=\($0.value)" }).joined(separator: " ") }
  }

  /// Every line logged through a `CapturingHandler`.
  final class Lines: Sendable {
    let lines = Mutex<[Line]>([])

    var all: [Line] { self.lines.withLock { $0 } }
  }

  /// Keeps every line logged through it.
  struct CapturingHandler: LogHandler {
    let lines: Lines
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
      get { self.metadata[key] }
      set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
      let metadata = self.metadata.merging(event.metadata ?? [:]) { $1 }.mapValues { "\($0)" }
      self.lines.lines.withLock {
        $0.append(Line(level: event.level, message: "\(event.message)", metadata: metadata))
      }
    }
  }

  /// A host that serves the lists and holds no identity.
  final class Host: RevocationHost {
    let lists = Mutex<[CertificateRevocationList]>([])

    func installRevocationLists(_ lists: [CertificateRevocationList]) {
      self.lists.withLock { $0 = lists }
    }

    var servedRevocationLists: [CertificateRevocationList] { self.lists.withLock { $0 } }

    func reissue(_ identity: SPIFFEID) async throws -> Bool { false }
  }

  @Test func eachRevocationIsLoggedAtNoticeWithSerialIdentityAndReasonAndNoKey() async throws {
    let clock = ManualClock(startDate: Fixtures.now)
    let record = RevocationServiceTests.MemoryRecord()
    let ca = EmbeddedCA(EmbeddedCA.Roots(signing: Fixtures.material), record: record)
    let lines = Lines()
    let logger = Logger(label: "test") { _ in CapturingHandler(lines: lines) }
    let service = RevocationService(
      ca: ca, record: record, host: Host(), clock: clock, now: { clock.date }, logger: logger)
    var serials: [CertificateSerial] = []
    for _ in 0..<2 {
      let issued = try await ca.certify(
        identity: Fixtures.identity, privateKey: try WorkloadKeyType.ecdsaP256.generate(), ttl: .seconds(3600),
        now: Fixtures.now, credential: .agent)
      serials.append(CertificateSerial(issued.certifiedKey.leaf.serialNumber))
    }

    let result = try await service.revoke(.identity(Fixtures.identity), reason: .keyCompromise)

    guard case .revoked(let entries) = result.outcome else {
      Issue.record("nothing was revoked: \(result.outcome)")
      return
    }
    #expect(Set(entries.map(\.serial)) == Set(serials))
    let notices = lines.all.filter { $0.level == .notice && $0.message == "revoked a certificate" }
    #expect(Set(notices.compactMap { $0.metadata["serial"] }) == Set(serials.map(\.description)))
    #expect(notices.allSatisfy { $0.metadata["identity"] == Fixtures.identity.description })
    #expect(notices.allSatisfy { $0.metadata["reason"] == "key-compromise" })
    let logged = lines.all.map(\.text)
    #expect(!logged.isEmpty && !logged.contains { $0.contains("PRIVATE KEY") || $0.contains("-----BEGIN") })
  }
}
