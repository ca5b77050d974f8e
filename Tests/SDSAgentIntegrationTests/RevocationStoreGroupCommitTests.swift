import Foundation
import SDSAgent
import SDSAgentCore
import SDSAgentTestSupport
import Testing

/// Certificates recorded at the same time share flushes of `issued.jsonl`, and every one is in
/// the file when its `record` returns.
@Suite struct RevocationStoreGroupCommitTests {
  let now = Date()
  let identity = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend")
  let directory = TemporaryDirectory.make()

  func serial(_ index: Int) -> CertificateSerial { CertificateSerial(hex: String(index + 1, radix: 16))! }

  /// Read without `loadIssued`, which would cut a line another flush is writing.
  func fileHolds(_ serial: CertificateSerial) -> Bool {
    guard let data = FileManager.default.contents(atPath: self.directory + "/" + RevocationFiles.issuedFileName) else {
      return false
    }
    return String(decoding: data, as: UTF8.self).split(separator: "\n").contains { $0.contains("\"\(serial)\"") }
  }

  @Test func everyRowRecordedConcurrentlyIsInTheFileWhenItsRecordReturns() async throws {
    let files = RevocationFiles(stateDirectory: self.directory)
    let store = try RevocationStore(files: files, schedule: CRLSchedule(validity: .seconds(3600)), now: self.now)
    let rows = 300
    let onDiskAtReturn = try await withThrowingTaskGroup(of: Bool.self) { group in
      for index in 0..<rows {
        let row = IssuedCertificate(serial: self.serial(index), identity: self.identity, notAfter: self.now + 600)
        group.addTask {
          try await store.record(row)
          return self.fileHolds(row.serial)
        }
      }
      return try await group.reduce(into: 0) { count, onDisk in count += onDisk ? 1 : 0 }
    }
    #expect(onDiskAtReturn == rows)
    let file = try #require(FileManager.default.contents(atPath: self.directory + "/" + RevocationFiles.issuedFileName))
    #expect(file.split(separator: UInt8(ascii: "\n")).count == rows)
    let reloaded = try files.loadIssued(now: self.now)
    #expect(Set(reloaded.rows.map(\.serial)) == Set((0..<rows).map(self.serial)))
    #expect(store.issued.count == rows)
  }
}
