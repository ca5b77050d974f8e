import EnvoySDSProtos
import Foundation
import SDSAgentCore
@_spi(FixedExpiryValidationTime) import X509

/// A rotation drill against a live agent: subscribe to `default` and `ROOTCA` like Envoy (one
/// stream each), force a rotation through the admin endpoint, and check that the new
/// certificate arrives on the open stream in time, chains to the served bundle, keeps the
/// identity and expires later.
package struct RotationDrill: Sendable {
  package struct Report: Sendable {
    package var oldSerial: String
    package var newSerial: String?
    package var identity: String
    package var pushLatency: Duration?
    package var failures: [String]

    package var passed: Bool { self.failures.isEmpty }

    package var text: String {
      var lines = [
        "rotation drill: \(self.passed ? "PASSED" : "FAILED")",
        "  identity:     \(self.identity)",
        "  old serial:   \(self.oldSerial)",
        "  new serial:   \(self.newSerial ?? "-")",
        "  push latency: \(self.pushLatency.map { DurationParser.formatMilliseconds($0) } ?? "-")",
      ]
      lines += self.failures.map { "  FAILED: \($0)" }
      return lines.joined(separator: "\n")
    }
  }

  package let socketPath: String
  package let admin: AgentConfiguration.AdminAddress
  package let timeout: Duration

  package init(socketPath: String, admin: AgentConfiguration.AdminAddress, timeout: Duration = .seconds(10)) {
    self.socketPath = socketPath
    self.admin = admin
    self.timeout = timeout
  }

  package func run() async throws -> Report {
    try await EnvoyStreams.with(socketPath: self.socketPath) { streams in
      let old = try Self.summary(streams.firstCertificate)
      let bundle = try Self.summary(streams.firstBundle)
      let identity = old.spiffeID
      var report = Report(
        oldSerial: old.certificates.first?.serialHex ?? "",
        identity: identity?.description ?? "-",
        failures: []
      )

      let started = ContinuousClock.now
      let rotation = try await AdminClient.request("POST", "/rotate", at: self.admin)
      guard rotation.status == 200 else {
        report.failures.append(
          "POST /rotate answered \(rotation.status): \(rotation.body.trimmingCharacters(in: .whitespacesAndNewlines))"
        )
        return report
      }
      guard let pushed = try await self.nextResponse(from: streams.certificates) else {
        report.failures.append(
          "no new certificate arrived on the open stream within \(DurationParser.format(self.timeout))")
        return report
      }
      report.pushLatency = ContinuousClock.now - started
      let new = try Self.summary(pushed)
      guard let newLeaf = new.certificates.first, let oldLeaf = old.certificates.first else {
        report.failures.append("the pushed secret holds no certificate")
        return report
      }
      report.newSerial = newLeaf.serialHex
      if newLeaf.serialNumber == oldLeaf.serialNumber {
        report.failures.append("the pushed certificate has the old serial")
      }
      if new.spiffeID != identity {
        report.failures.append(
          "the identity changed from \(identity?.description ?? "-") to \(new.spiffeID?.description ?? "-")")
      }
      // Certificate times have one-second resolution: a rotation within the same second as
      // the previous issuance expires in the same second, not later.
      if newLeaf.notValidAfter < oldLeaf.notValidAfter {
        report.failures.append("the new certificate expires before the old one")
      }
      if let key = new.privateKeyPEM, let parsed = try? Certificate.PrivateKey(pemEncoded: key) {
        if parsed.publicKey != newLeaf.publicKey {
          report.failures.append("the pushed key does not match the certificate")
        }
      } else {
        report.failures.append("the pushed secret has no readable private key")
      }
      var verifier = Verifier(rootCertificates: CertificateStore(bundle.certificates)) {
        RFC5280Policy(fixedExpiryValidationTime: Date())
        SPIFFELeafPolicy(expectedIdentity: identity)
      }
      let result = await verifier.validate(
        leaf: newLeaf, intermediates: CertificateStore(Array(new.certificates.dropFirst())))
      if case .couldNotValidate(let failures) = result {
        report.failures.append(
          "the new chain does not verify against the served bundle: \(failures.map { "\($0.policyFailureReason)" }.joined(separator: "; "))"
        )
      }
      return report
    }
  }

  private func nextResponse(from stream: SDSStream) async throws -> SDSStream.Response? {
    try await withTimeLimit(self.timeout, on: ContinuousClock()) { try await stream.next() } ?? nil
  }

  static func summary(_ response: SDSStream.Response) throws -> SecretSummary {
    guard let resource = response.resources.first else {
      throw AgentError(.connection, "the agent sent a response without resources")
    }
    return try SecretSummary(any: resource)
  }
}
