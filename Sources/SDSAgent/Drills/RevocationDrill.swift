import EnvoySDSProtos
import Foundation
import SDSAgentCore
import SwiftASN1
@_spi(FixedExpiryValidationTime) import X509

/// A revocation drill against a live agent: hold `default` and `ROOTCA` like Envoy (one stream
/// each, every response acknowledged), revoke the certificate held through the admin endpoint
/// (`POST /ca/revoke`), and check, on the open streams and within `timeout`, that a certificate
/// with a new serial and a new key replaces it and that `ROOTCA` arrives with revocation lists,
/// each signed by a root of the bundle, that name the revoked serial and not the new one.
package struct RevocationDrill: Sendable {
  package struct Report: Sendable {
    package var identity = "-"
    package var oldSerial = "-"
    package var newSerial: String?
    /// When the agent answered the revocation, since it was asked.
    package var answered: Duration?
    /// When the new certificate arrived on the open `default` stream, since the revocation.
    package var certificateArrived: Duration?
    /// When a `ROOTCA` naming the revoked serial arrived, since the revocation.
    package var listsArrived: Duration?
    /// The CRL numbers of the lists that arrived.
    package var listNumbers: [Int] = []
    package var failures: [String] = []

    package var passed: Bool { self.failures.isEmpty }

    package var text: String {
      let time = { (duration: Duration?) in duration.map { "+" + DurationParser.formatMilliseconds($0) } ?? "-" }
      var lines = [
        "revocation drill: \(self.passed ? "PASSED" : "FAILED")",
        "  identity:          \(self.identity)",
        "  revoked serial:    \(self.oldSerial)",
        "  new serial:        \(self.newSerial ?? "-")",
        "  revoke answered:   \(time(self.answered))",
        "  new certificate:   \(time(self.certificateArrived))",
        "  revocation list:   \(time(self.listsArrived))"
          + (self.listNumbers.isEmpty
            ? "" : " (CRL number \(self.listNumbers.map(String.init).joined(separator: ", ")))"),
      ]
      if let certificate = self.certificateArrived, let lists = self.listsArrived, lists < certificate {
        lines.append("  note: the list arrived before the new certificate; the holder was refused in between")
      }
      lines += self.failures.map { "  FAILED: \($0)" }
      return lines.joined(separator: "\n")
    }
  }

  package let socketPath: String
  package let admin: AgentConfiguration.AdminAddress
  package let timeout: Duration
  package let reason: RevocationReason

  package init(
    socketPath: String, admin: AgentConfiguration.AdminAddress, timeout: Duration = .seconds(10),
    reason: RevocationReason = .superseded
  ) {
    self.socketPath = socketPath
    self.admin = admin
    self.timeout = timeout
    self.reason = reason
  }

  private enum Event: Sendable {
    case push(EnvoyStreams.Push)
    case answered(AdminClient.Response)
    case failed(String)
    case deadline
  }

  package func run() async throws -> Report {
    try await EnvoyStreams.with(socketPath: self.socketPath) { try await self.drill($0) }
  }

  private func drill(_ streams: EnvoyStreams) async throws -> Report {
    let old = try RotationDrill.summary(streams.firstCertificate)
    guard let oldLeaf = old.certificates.first else {
      throw AgentError(.connection, "the agent's first default secret holds no certificate")
    }
    var roots = try RotationDrill.summary(streams.firstBundle).certificates
    let revoked = CertificateSerial(oldLeaf.serialNumber)
    var report = Report(identity: old.spiffeID?.description ?? "-", oldSerial: revoked.description)
    var newLeaf: Certificate?
    var lists: [CertificateRevocationList] = []

    let started = ContinuousClock.now
    let (events, sink) = AsyncStream.makeStream(of: Event.self)
    return await withTaskGroup(of: Void.self) { group in
      group.addTask { await streams.forward { sink.yield(.push($0)) } }
      group.addTask {
        let body = #"{"serial": "\#(revoked)", "reason": "\#(self.reason.rawValue)"}"#
        do {
          sink.yield(
            .answered(try await AdminClient.request("POST", "/ca/revoke", at: self.admin, body: Array(body.utf8))))
        } catch {
          sink.yield(.failed("POST /ca/revoke failed: \(error)"))
        }
      }
      group.addTask { [timeout] in
        // The bound of the whole drill, not a wait for something.
        guard (try? await ContinuousClock().sleep(for: timeout)) != nil else { return }
        sink.yield(.deadline)
      }
      defer { group.cancelAll() }
      for await event in events {
        let at = ContinuousClock.now - started
        switch event {
        case .failed(let reason):
          report.failures.append(reason)
          return report
        case .deadline:
          report.failures += self.missing(from: report)
          return report
        case .answered(let response):
          report.answered = at
          if let failure = Self.check(response, revoking: revoked) {
            report.failures.append(failure)
            return report
          }
        case .push(.ended(let error)):
          report.failures.append(error.map { "a stream failed: \($0)" } ?? "the agent ended a stream")
          return report
        case .push(.certificate(let response)):
          guard report.certificateArrived == nil, let summary = try? RotationDrill.summary(response),
            let leaf = summary.certificates.first, leaf.serialNumber != oldLeaf.serialNumber
          else { continue }
          report.certificateArrived = at
          report.newSerial = CertificateSerial(leaf.serialNumber).description
          newLeaf = leaf
          report.failures += await Self.check(summary, replacing: old, roots: roots)
        case .push(.bundle(let response)):
          guard let summary = try? RotationDrill.summary(response) else {
            report.failures.append("the agent pushed a ROOTCA the drill cannot read")
            return report
          }
          roots = summary.certificates
          lists = Self.revocationLists(in: response)
          guard report.listsArrived == nil, !lists.isEmpty, lists.allSatisfy({ $0.revokes(revoked) }) else { continue }
          report.listsArrived = at
          report.listNumbers = lists.map(\.number)
          // An operator intermediate signs the leaves' list itself.
          let issuers = roots + old.certificates.dropFirst()
          for list in lists where !issuers.contains(where: { list.isSigned(by: $0) }) {
            report.failures.append(
              "the list of \(list.issuer) (number \(list.number)) is signed by no root of ROOTCA nor intermediate")
          }
        }
        if report.answered != nil, report.listsArrived != nil, let newLeaf {
          let serial = CertificateSerial(newLeaf.serialNumber)
          if lists.contains(where: { $0.revokes(serial) }) {
            report.failures.append("the revocation lists also name the new serial \(serial)")
          }
          return report
        }
      }
      return report
    }
  }

  /// Why the agent's answer to the revocation is not what the drill asked, if it is not.
  private static func check(_ response: AdminClient.Response, revoking serial: CertificateSerial) -> String? {
    guard response.status == 200 else {
      return "POST /ca/revoke answered \(response.status): "
        + BoundedText.escaped(response.body.trimmingCharacters(in: .whitespacesAndNewlines))
    }
    guard let answer = try? response.decode(AdminAPI.Revoked.self) else {
      return "POST /ca/revoke answered a body that is not a revocation: \(BoundedText(response.body, limit: 200))"
    }
    guard answer.serials.compactMap({ CertificateSerial(hex: $0) }) == [serial] else {
      return "POST /ca/revoke revoked \(answer.serials.map { BoundedText.escaped($0) }), not \(serial)"
    }
    return nil
  }

  /// What is wrong with `new`, the certificate that replaces `old`: its key, its identity, its chain.
  private static func check(_ new: SecretSummary, replacing old: SecretSummary, roots: [Certificate]) async
    -> [String]
  {
    guard let leaf = new.certificates.first, let oldLeaf = old.certificates.first else { return [] }
    var failures: [String] = []
    if leaf.publicKey == oldLeaf.publicKey {
      failures.append("the new certificate \(leaf.serialHex) has the revoked certificate's key")
    }
    if let key = new.privateKeyPEM, let parsed = try? Certificate.PrivateKey(pemEncoded: key) {
      if parsed.publicKey != leaf.publicKey { failures.append("the pushed key does not match the new certificate") }
    } else {
      failures.append("the pushed secret has no readable private key")
    }
    if new.spiffeID != old.spiffeID {
      failures.append(
        "the identity changed from \(old.spiffeID?.description ?? "-") to \(new.spiffeID?.description ?? "-")")
    }
    var verifier = Verifier(rootCertificates: CertificateStore(roots)) {
      RFC5280Policy(fixedExpiryValidationTime: Date())
      SPIFFELeafPolicy(expectedIdentity: old.spiffeID)
    }
    let result = await verifier.validate(
      leaf: leaf, intermediates: CertificateStore(Array(new.certificates.dropFirst())))
    if case .couldNotValidate = result {
      failures.append("the new certificate \(leaf.serialHex) does not chain to the ROOTCA held")
    }
    return failures
  }

  /// The steps that did not happen in time.
  private func missing(from report: Report) -> [String] {
    let bound = DurationParser.format(self.timeout)
    var failures: [String] = []
    if report.answered == nil { failures.append("the agent did not answer POST /ca/revoke within \(bound)") }
    if report.certificateArrived == nil {
      failures.append("no certificate with a new serial arrived on the open default stream within \(bound)")
    }
    if report.listsArrived == nil {
      failures.append(
        "no ROOTCA whose revocation lists name \(report.oldSerial) arrived on the open stream within \(bound) "
          + "(GET /ca/crl shows the lists; the agent's log says why none is served)")
    }
    return failures
  }

  /// The revocation lists a validation context carries in its `crl` field (PEM).
  static func revocationLists(in response: SDSStream.Response) -> [CertificateRevocationList] {
    guard let resource = response.resources.first,
      let secret = try? Envoy_Extensions_TransportSockets_Tls_V3_Secret(unpackingAny: resource),
      case .validationContext(let context) = secret.type,
      let documents = try? PEMDocument.parseMultiple(
        pemString: String(decoding: context.crl.inlineBytes, as: UTF8.self))
    else { return [] }
    return documents.filter { $0.discriminator == "X509 CRL" }.compactMap {
      try? CertificateRevocationList(derEncoded: $0.derBytes)
    }
  }
}
