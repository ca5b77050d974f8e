import Foundation
import SDSAgentCore
import Testing

@Suite struct WorkloadRuleTests {
  /// A new empty file in a new temporary directory, by its real path.
  static func file(named name: String) throws -> String {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rule-" + UUID().uuidString)
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let path = directory.appendingPathComponent(name).path
    #expect(FileManager.default.createFile(atPath: path, contents: Data("#!/bin/sh\n".utf8)))
    return URL(fileURLWithPath: path).resolvingSymlinksInPath().path
  }

  @Test func anExeRuleNamingASymlinkMatchesTheFileItPointsTo() throws {
    let python = try Self.file(named: "python3.12")
    let link = (python as NSString).deletingLastPathComponent + "/python"
    try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: "python3.12")
    let rule = try WorkloadRule(parsing: "exe=\(link),spiffe-id=spiffe://cluster.local/ns/ml/sa/trainer")
    #expect(rule.executable == python)
    #expect(rule.description == "exe=\(python),spiffe-id=spiffe://cluster.local/ns/ml/sa/trainer")
    // What /proc/<pid>/exe reports for a process started through the link.
    #expect(rule.matches(PeerCredentials(pid: 1, uid: 1000, gid: 1000, executable: python)))
  }

  @Test func anExeThatDoesNotExistIsAnErrorNamingTheRule() throws {
    let missing = (try Self.file(named: "envoy") as NSString).deletingLastPathComponent + "/no-such-envoy"
    let text = "uid=1002,exe=\(missing),spiffe-id=spiffe://cluster.local/ns/web/sa/gateway"
    #expect(
      throws: ConfigurationError(
        key: "workload", value: text, allowed: "exe naming an existing file (\(missing) does not exist)")
    ) {
      try WorkloadRule(parsing: text)
    }
  }
}
