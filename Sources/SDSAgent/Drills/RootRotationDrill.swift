import EnvoySDSProtos
import Foundation
import SDSAgentCore
@_spi(FixedExpiryValidationTime) import X509

/// A root drill against a live agent: hold `default` and `ROOTCA` like Envoy (one stream each,
/// every response acknowledged), start a staged root rotation through the admin endpoint and
/// follow it to the end. Every certificate pushed must chain to the bundle held when it arrived;
/// the new root must arrive before the switch (the first leaf it signed), a leaf of the new root
/// after it, and a bundle without the old root at the retirement. The drill waits for pushes; it
/// asks the admin endpoint only to start the rotation and, at the switch, when it retires.
package struct RootRotationDrill: Sendable {
  package struct Report: Sendable {
    package var oldRoot: String = "-"
    package var newRoot: String = "-"
    /// Phase changes as the drill's streams show them (the first leaf of the new root, the first
    /// bundle without the old root), with their time since the start.
    package var phases: [(String, Duration)] = []
    /// What arrived on the drill's own streams, with its time since the start.
    package var pushes: [(String, Duration)] = []
    package var failures: [String] = []

    package var passed: Bool { self.failures.isEmpty }

    package var text: String {
      var lines = [
        "root drill: \(self.passed ? "PASSED" : "FAILED")",
        "  old root: \(self.oldRoot)",
        "  new root: \(self.newRoot)",
      ]
      lines += self.phases.map { "  phase \($0.0) at +\(DurationParser.formatMilliseconds($0.1))" }
      lines += self.pushes.map { "  push at +\(DurationParser.formatMilliseconds($0.1)): \($0.0)" }
      lines += self.failures.map { "  FAILED: \($0)" }
      return lines.joined(separator: "\n")
    }
  }

  package let socketPath: String
  package let admin: AgentConfiguration.AdminAddress
  /// Overrides the agent's `--root-overlap` for this rotation.
  package let overlap: Duration?
  /// How long after the last expected step the drill waits before it fails.
  package let grace: Duration

  package init(
    socketPath: String, admin: AgentConfiguration.AdminAddress, overlap: Duration? = nil,
    grace: Duration = .seconds(15)
  ) {
    self.socketPath = socketPath
    self.admin = admin
    self.overlap = overlap
    self.grace = grace
  }

  private enum Event: Sendable {
    case push(EnvoyStreams.Push)
    /// The time limit set for the rotation's next step passed.
    case timedOut(Date)
  }

  package func run() async throws -> Report {
    try await EnvoyStreams.with(socketPath: self.socketPath) { try await self.drill($0) }
  }

  private func drill(_ streams: EnvoyStreams) async throws -> Report {
    var held = try RotationDrill.summary(streams.firstBundle).certificates
    var report = Report()
    guard held.count == 1 else {
      report.failures.append("the bundle holds \(held.count) roots before the drill; is a rotation running?")
      return report
    }
    let oldRoot = held[0]
    report.oldRoot = oldRoot.serialHex

    let started = ContinuousClock.now
    let path = "/ca/rotate-root" + (self.overlap.map { "?overlap=\(DurationParser.format($0))" } ?? "")
    let answer = try await AdminClient.request("POST", path, at: self.admin)
    guard answer.status == 202, let rotation = (try? answer.decode(AdminAPI.Trust.self))?.rotation else {
      report.failures.append(
        "POST \(path) answered \(answer.status): \(answer.body.trimmingCharacters(in: .whitespacesAndNewlines))")
      return report
    }
    let newSerial = rotation.newRoot
    report.newRoot = newSerial
    report.phases.append(("prepared", ContinuousClock.now - started))
    var deadline = rotation.switchDeadline.addingTimeInterval(self.grace.seconds)
    var phase = "prepared"
    var newRootArrivedBeforeSwitch = false
    var newLeafSeen = false
    var retiredBundleSeen = false

    let (events, sink) = AsyncStream.makeStream(of: Event.self)
    return try await withThrowingTaskGroup(of: Void.self) { group in
      group.addTask { await streams.forward { sink.yield(.push($0)) } }
      group.addTask { [deadline] in await Self.timeLimit(deadline, sink) }
      defer { group.cancelAll() }
      for await event in events {
        let at = ContinuousClock.now - started
        switch event {
        case .push(.ended(let error)):
          report.failures.append(error.map { "a stream failed: \($0)" } ?? "the agent ended a stream")
          return report
        case .push(.bundle(let response)):
          held = try RotationDrill.summary(response).certificates
          report.pushes.append(("ROOTCA roots=\(held.map(\.serialHex))", at))
          if phase == "prepared", held.contains(where: { $0.serialHex == newSerial }) {
            newRootArrivedBeforeSwitch = true
          }
          if !held.contains(oldRoot) { retiredBundleSeen = true }
        case .push(.certificate(let response)):
          let summary = try RotationDrill.summary(response)
          let leaf = summary.certificates.first
          let root = await Self.root(of: summary, in: held)
          report.pushes.append(
            ("default serial=\(leaf?.serialHex ?? "-") chains to \(root?.serialHex ?? "no root held")", at))
          if root == nil {
            report.failures.append(
              "the certificate \(leaf?.serialHex ?? "-") pushed at +\(DurationParser.formatMilliseconds(at)) does "
                + "not chain to the bundle held then (\(held.map(\.serialHex)))")
          }
          guard root?.serialHex == newSerial else { break }
          newLeafSeen = true
          if phase == "prepared" {
            // The first leaf of the new root: the agent has switched, and says when it retires.
            phase = "switched"
            report.phases.append((phase, at))
            guard let retireAt = try await self.retireAt() else {
              report.failures.append("GET /debug/trust does not say when the old root retires")
              return report
            }
            deadline = retireAt.addingTimeInterval(self.grace.seconds)
            group.addTask { [deadline] in await Self.timeLimit(deadline, sink) }
          }
        case .timedOut(let limit):
          guard limit == deadline else { break }
          if !newRootArrivedBeforeSwitch {
            report.failures.append("the new root never arrived on the open ROOTCA stream before the switch")
          }
          if !newLeafSeen { report.failures.append("no certificate of the new root arrived on the open stream") }
          if !retiredBundleSeen { report.failures.append("no bundle without the old root arrived") }
          report.failures.append("the rotation did not finish in time (phase \(phase))")
          return report
        }
        if retiredBundleSeen, newLeafSeen {
          report.phases.append(("idle", ContinuousClock.now - started))
          if !newRootArrivedBeforeSwitch {
            report.failures.append("the new root did not arrive on the open ROOTCA stream before the switch")
          }
          return report
        }
      }
      return report
    }
  }

  /// When the rotation under way retires the old root, as `/debug/trust` says.
  private func retireAt() async throws -> Date? {
    try await AdminClient.request("GET", "/debug/trust", at: self.admin).decode(AdminAPI.Trust.self).rotation?.retireAt
  }

  /// Yields `timedOut(deadline)` once `deadline` has passed, unless cancelled first.
  private static func timeLimit(_ deadline: Date, _ sink: AsyncStream<Event>.Continuation) async {
    try? await ContinuousClock().sleep(for: .seconds(max(0, deadline.timeIntervalSinceNow)))
    guard !Task.isCancelled else { return }
    sink.yield(.timedOut(deadline))
  }

  /// The root among `roots` the certificate's chain verifies against, if any.
  private static func root(of summary: SecretSummary, in roots: [Certificate]) async -> Certificate? {
    guard let leaf = summary.certificates.first else { return nil }
    for root in roots {
      var verifier = Verifier(rootCertificates: CertificateStore([root])) {
        RFC5280Policy(fixedExpiryValidationTime: Date())
        SPIFFELeafPolicy(expectedIdentity: summary.spiffeID)
      }
      let result = await verifier.validate(
        leaf: leaf, intermediates: CertificateStore(Array(summary.certificates.dropFirst())))
      if case .validCertificate = result { return root }
    }
    return nil
  }
}
