import Foundation
import SDSAgent
import SDSAgentCore
import SDSAgentTestSupport
import Testing
import X509

/// The embedded CA's roots and rotation in the state directory: each phase is read back as it
/// was kept, an interrupted switch is finished, and a damaged record stops the start.
@Suite struct RootRotationFilesTests {
  let directory = TemporaryDirectory.make() + "/state"
  var files: RootRotationFiles { RootRotationFiles(stateDirectory: self.directory) }
  let now = Date()

  func prepare() throws -> (first: CAMaterial, next: CAMaterial, rotation: RootRotation) {
    let (roots, rotation) = try self.files.load(trustDomain: "cluster.local", now: self.now)
    #expect(rotation == nil)
    let next = try CAMaterial.generateRoot(trustDomain: "cluster.local", now: self.now, commonName: "next")
    let prepared = RootRotation(
      preparedAt: self.now, overlap: .seconds(60), previousRootSerial: roots.signing.certificate.serialHex,
      nextRootSerial: next.certificate.serialHex)
    try self.files.prepared(prepared, next: next)
    return (roots.signing, next, prepared)
  }

  func mode(_ name: String) throws -> Int {
    let attributes = try FileManager.default.attributesOfItem(atPath: self.directory + "/" + name)
    return (attributes[.posixPermissions] as? Int) ?? -1
  }

  @Test func aPreparedRotationIsReadBackWithBothRootsAndItsDeadlines() throws {
    let (first, next, prepared) = try self.prepare()
    #expect(try self.mode(RootRotationFiles.nextKeyFileName) == 0o600)
    let (roots, rotation) = try self.files.load(trustDomain: "cluster.local", now: self.now)
    #expect(roots.signing.certificate == first.certificate)
    #expect(roots.next?.certificate == next.certificate)
    #expect(rotation?.phase == .prepared)
    #expect(rotation?.nextRootSerial == prepared.nextRootSerial)
    #expect(abs((rotation?.switchAt.timeIntervalSince(prepared.switchAt)) ?? 99) < 1)
  }

  @Test func aSwitchedRotationSignsWithTheNewRootAndKeepsTheOldOneTrusted() throws {
    let (first, next, prepared) = try self.prepare()
    var switched = prepared
    switched.switched(at: self.now, lastOldLeafExpiry: self.now.addingTimeInterval(3600))
    try self.files.switched(switched, from: first)
    let (roots, rotation) = try self.files.load(trustDomain: "cluster.local", now: self.now)
    #expect(roots.signing.certificate == next.certificate)
    #expect(roots.previous == first.certificate)
    #expect(rotation?.phase == .switched)
    #expect(try self.mode(CAStore.keyFileName) == 0o600)
    #expect(!FileManager.default.fileExists(atPath: self.directory + "/" + RootRotationFiles.nextKeyFileName))
    try self.files.retired()
    let (after, none) = try self.files.load(trustDomain: "cluster.local", now: self.now)
    #expect(none == nil)
    #expect(after.trustBundle.roots == [next.certificate])
  }

  @Test func theRetiringRootsKeyIsKeptPrivatelyUntilItRetiresSoItSignsItsRevocationList() throws {
    let (first, next, prepared) = try self.prepare()
    var switched = prepared
    switched.switched(at: self.now, lastOldLeafExpiry: self.now.addingTimeInterval(3600))
    try self.files.switched(switched, from: first)
    #expect(try self.mode(RootRotationFiles.previousKeyFileName) == 0o600)
    let (roots, _) = try self.files.load(trustDomain: "cluster.local", now: self.now)
    #expect(roots.previousKey?.publicKey == first.certificate.publicKey)
    #expect(roots.notRevocable == nil)
    #expect(roots.crlIssuers.map(\.certificate) == [first.certificate, next.certificate])
    try self.files.retired()
    #expect(!FileManager.default.fileExists(atPath: self.directory + "/" + RootRotationFiles.previousKeyFileName))
  }

  @Test func aSwitchInterruptedBeforeTheRootsMovedIsFinishedAtStart() throws {
    let (first, next, prepared) = try self.prepare()
    var switched = prepared
    switched.switched(at: self.now, lastOldLeafExpiry: self.now.addingTimeInterval(3600))
    // The record and the previous root are written, the prepared root's files not moved yet.
    try first.certificate.pemString().write(
      toFile: self.directory + "/" + RootRotationFiles.previousCertificateFileName, atomically: true, encoding: .utf8)
    let encoder = JSONEncoder()
    encoder.dateEncodingStrategy = .iso8601
    try encoder.encode(switched).write(
      to: URL(fileURLWithPath: self.directory + "/" + RootRotationFiles.rotationFileName))
    let (roots, rotation) = try self.files.load(trustDomain: "cluster.local", now: self.now)
    #expect(rotation?.phase == .switched)
    #expect(roots.signing.certificate == next.certificate)
    #expect(roots.previous == first.certificate)
  }

  @Test func aCorruptRecordStopsTheStartNamingTheFile() throws {
    _ = try self.prepare()
    let record = self.directory + "/" + RootRotationFiles.rotationFileName
    try "{\"phase\": \"prepared\", \"garbage".write(toFile: record, atomically: true, encoding: .utf8)
    #expect {
      _ = try self.files.load(trustDomain: "cluster.local", now: self.now)
    } throws: { error in
      "\(error)".contains(record) && "\(error)".contains("corrupt")
    }
  }

  @Test func aMissingPreparedKeyStopsTheStartInsteadOfMakingANewRoot() throws {
    _ = try self.prepare()
    let key = self.directory + "/" + RootRotationFiles.nextKeyFileName
    try FileManager.default.removeItem(atPath: key)
    #expect {
      _ = try self.files.load(trustDomain: "cluster.local", now: self.now)
    } throws: { error in
      "\(error)".contains(key) && "\(error)".contains("missing")
    }
    #expect(!FileManager.default.fileExists(atPath: key))
  }

  @Test func filesOfAPrepareThatWasNeverRecordedAreDiscarded() throws {
    let (first, next, _) = try self.prepare()
    try FileManager.default.removeItem(atPath: self.directory + "/" + RootRotationFiles.rotationFileName)
    let (roots, rotation) = try self.files.load(trustDomain: "cluster.local", now: self.now)
    #expect(rotation == nil)
    #expect(roots.signing.certificate == first.certificate)
    #expect(!roots.trustBundle.roots.contains(next.certificate))
    #expect(!FileManager.default.fileExists(atPath: self.directory + "/" + RootRotationFiles.nextKeyFileName))
  }
}
