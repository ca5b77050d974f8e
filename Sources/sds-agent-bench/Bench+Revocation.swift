import Foundation

/// Revocation propagation, from `sds-agent ca revoke` to Envoy 1.40 refusing the revoked
/// certificate: `Benchmarks/revocation.py` with the bench's Python (it needs the Envoy of the
/// end-to-end tests' venv), whose table rows this phase prints.
extension Bench {
  static let revocationScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Benchmarks/revocation.py").path

  static let revocationHeader = ["since `ca revoke` started", "runs", "p50", "mean", "max"]

  func revocation(runs: Int) async throws -> [[String]] {
    guard let python = self.python else { return [["(no --python: needs the venv with Envoy)", "-", "-", "-", "-"]] }
    let pipe = Pipe()
    let child = try ChildProcess(
      python, [Self.revocationScript, "--agent", self.agentBinary, "--runs", "\(runs)", "--markdown"],
      standardOutput: pipe, in: self.children)
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    await child.stop()
    guard child.process.terminationStatus == 0 else {
      throw BenchError(.process, "\(Self.revocationScript) exited with status \(child.process.terminationStatus)")
    }
    return output.split(separator: "\n").filter { $0.hasPrefix("| ") }.map { line in
      line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }
  }
}
