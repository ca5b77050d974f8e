import Foundation
import SDSAgent
import SDSAgentCore
import SDSAgentTestSupport
import Testing

/// The embedded CA's record of what it signed and what it revoked survives restarts, and a
/// crash in the middle of a write loses nothing that was served.
@Suite struct RevocationFilesTests {
  let now = Date(timeIntervalSince1970: 1_800_000_000)
  let identity = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend")
  let directory = TemporaryDirectory.make()

  func row(_ hex: String, expiresIn seconds: TimeInterval = 3600) -> IssuedCertificate {
    IssuedCertificate(serial: CertificateSerial(hex: hex)!, identity: self.identity, notAfter: self.now + seconds)
  }

  var issuedPath: String { self.directory + "/" + RevocationFiles.issuedFileName }

  @Test func appendedRowsAreThereAfterARestartAndPrivate() throws {
    let files = RevocationFiles(stateDirectory: self.directory)
    for hex in ["01", "02", "03"] { try files.append(self.row(hex)) }
    let issued = try RevocationFiles(stateDirectory: self.directory).loadIssued(now: self.now)
    #expect(issued.rows.map(\.serial.description) == ["01", "02", "03"])
    #expect(issued.row(serial: CertificateSerial(hex: "2")!)?.identity == self.identity)
    let mode = try FileManager.default.attributesOfItem(atPath: self.issuedPath)[.posixPermissions] as? Int
    #expect(mode == 0o600)
  }

  @Test func aWriteTornByACrashLosesOnlyItsOwnRowAndTheNextAppendIsWhole() throws {
    let files = RevocationFiles(stateDirectory: self.directory)
    try files.append(self.row("01"))
    try files.append(self.row("02"))
    // The process died in the middle of the third append: its certificate was never served.
    let handle = try #require(FileHandle(forWritingAtPath: self.issuedPath))
    handle.seekToEndOfFile()
    handle.write(Data(#"{"identity":"spiffe://cluster.local/ns/web/sa/frontend","notAf"#.utf8))
    try handle.close()
    #expect(try files.loadIssued(now: self.now).rows.map(\.serial.description) == ["01", "02"])
    try files.append(self.row("04"))
    #expect(try files.loadIssued(now: self.now).rows.map(\.serial.description) == ["01", "02", "04"])
  }

  @Test func aDamagedLineInTheMiddleStopsTheLoadSayingWhere() throws {
    let files = RevocationFiles(stateDirectory: self.directory)
    try files.append(self.row("01"))
    let handle = try #require(FileHandle(forWritingAtPath: self.issuedPath))
    handle.seekToEndOfFile()
    handle.write(Data("not json\n".utf8))
    try handle.close()
    try files.append(self.row("03"))
    #expect {
      try files.loadIssued(now: self.now)
    } throws: { error in
      "\(error)".contains("line 2")
    }
  }

  @Test func expiredRowsAreDroppedWhenLoadedAndRewritten() throws {
    let files = RevocationFiles(stateDirectory: self.directory)
    try files.append(self.row("01", expiresIn: -1))
    try files.append(self.row("02"))
    let issued = try files.loadIssued(now: self.now)
    #expect(issued.rows.map(\.serial.description) == ["02"])
    try files.rewriteIssued(issued)
    let lines = try String(contentsOfFile: self.issuedPath, encoding: .utf8).split(separator: "\n")
    #expect(lines.count == 1)
  }

  @Test func revocationsSurviveARestartAndAnInterruptedReplaceKeepsTheOld() throws {
    let files = RevocationFiles(stateDirectory: self.directory)
    #expect(try files.loadRevocations() == Revocations())
    var issued = IssuedCertificates()
    issued.record(self.row("01"), at: self.now)
    var revocations = Revocations()
    _ = revocations.revoke(
      .serial(CertificateSerial(hex: "01")!), reason: .keyCompromise, issued: issued, at: self.now)
    _ = revocations.nextCRLNumber()
    try files.saveRevocations(revocations)
    // A replacement that died before its rename leaves its temporary file behind, nothing else.
    try "{".write(
      toFile: self.directory + "/" + RevocationFiles.revocationsFileName + ".tmp.99999", atomically: false,
      encoding: .utf8)
    let loaded = try RevocationFiles(stateDirectory: self.directory).loadRevocations()
    #expect(loaded == revocations)
    #expect(loaded.crlNumber == 1)
    #expect(loaded.isRevoked(CertificateSerial(hex: "01")!))
  }
}
