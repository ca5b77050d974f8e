import Foundation
import SDSAgent
import SDSAgentCore
import SDSAgentTestSupport
import Testing

/// The JWT signing keys in the state directory, read back in step with the root rotation's phase:
/// an agent restarted in any phase resumes it, an interrupted switch is finished, and a key
/// leaves once its retirement has passed.
@Suite struct JWTKeyFilesTests {
  let directory = TemporaryDirectory.make() + "/state"
  var files: JWTKeyFiles { JWTKeyFiles(stateDirectory: self.directory) }
  let now = Date(timeIntervalSince1970: 1_800_000_000)
  let ttl = Duration.seconds(300)

  func exists(_ name: String) -> Bool {
    FileManager.default.fileExists(atPath: self.directory + "/" + name)
  }

  func mode(_ name: String) throws -> Int {
    let attributes = try FileManager.default.attributesOfItem(atPath: self.directory + "/" + name)
    return (attributes[.posixPermissions] as? Int) ?? -1
  }

  func load(_ phase: RootRotation.Phase?, at date: Date? = nil) throws -> JWTSigningKeys {
    try self.files.load(rootPhase: phase, ttl: self.ttl, now: date ?? self.now)
  }

  /// Prepared and switched as the ring does it, at `now`.
  func switched() throws -> (old: String, new: String, keys: JWTSigningKeys) {
    var keys = try self.load(nil)
    let old = keys.signing.kid
    keys.prepare(try self.files.makeNext())
    keys.switchToNext(at: self.now, ttl: self.ttl)
    try self.files.switched(keys)
    return (old, keys.signing.kid, keys)
  }

  @Test func theFirstStartMakesAKeyAndLaterStartsReadIt() throws {
    let first = try self.load(nil)
    #expect(try self.mode(JWTKeyFiles.keyFileName) == 0o600)
    #expect(try self.load(nil).signing.kid == first.signing.kid)
    #expect(first.next == nil && first.retiring.isEmpty)
  }

  @Test func aPreparedRotationResumesWithItsKeyAndAnInterruptedPrepareGetsOne() throws {
    let signing = try self.load(nil).signing.kid
    // The root's prepare was recorded but the key's was not: one is made at the start.
    let made = try self.load(.prepared)
    let next = try #require(made.next)
    #expect(made.signing.kid == signing)
    #expect(try self.mode(JWTKeyFiles.nextKeyFileName) == 0o600)
    // Restarted while prepared: the same prepared key, published, not signing.
    let resumed = try self.load(.prepared)
    #expect(resumed.next?.kid == next.kid)
    #expect(resumed.published.map(\.kid) == [signing, next.kid])
  }

  @Test func aPreparedKeyNoRotationRecordedIsRemoved() throws {
    let signing = try self.load(nil).signing.kid
    _ = try self.files.makeNext()
    let keys = try self.load(nil)
    #expect(keys.next == nil && keys.signing.kid == signing)
    #expect(!self.exists(JWTKeyFiles.nextKeyFileName))
  }

  @Test func aSwitchedRotationResumesWithTheOldKeyRetiringAtItsTime() throws {
    let (old, new, _) = try self.switched()
    #expect(!self.exists(JWTKeyFiles.nextKeyFileName))
    let keys = try self.load(.switched, at: self.now.addingTimeInterval(60))
    #expect(keys.signing.kid == new)
    #expect(keys.published.map(\.kid) == [new, old])
    #expect(keys.retiring.first?.retireAt == self.now.addingTimeInterval(300))
    // Also once the root rotation is over: the old key outlives it.
    #expect(try self.load(nil, at: self.now.addingTimeInterval(299)).published.map(\.kid) == [new, old])
  }

  @Test func aKeyWhoseRetirementPassedWhileStoppedIsGoneAtTheStart() throws {
    let (_, new, _) = try self.switched()
    let keys = try self.load(nil, at: self.now.addingTimeInterval(300))
    #expect(keys.published.map(\.kid) == [new])
    #expect(!self.exists(JWTKeyFiles.retiringFileName))
  }

  @Test func aSwitchInterruptedBeforeTheRenameIsFinished() throws {
    var keys = try self.load(nil)
    let old = keys.signing.kid
    keys.prepare(try self.files.makeNext())
    keys.switchToNext(at: self.now, ttl: self.ttl)
    // The record names the new key, but the next key was never renamed over the old one.
    try self.files.retired(keys)
    #expect(self.exists(JWTKeyFiles.nextKeyFileName))
    let resumed = try self.load(.switched)
    #expect(resumed.signing.kid == keys.signing.kid)
    #expect(resumed.published.map(\.kid) == [keys.signing.kid, old])
    #expect(!self.exists(JWTKeyFiles.nextKeyFileName))
  }

  @Test func aRootSwitchTheKeysDidNotRecordIsMadeAtTheStart() throws {
    let old = try self.load(nil).signing.kid
    let next = try self.files.makeNext()
    let keys = try self.load(.switched)
    #expect(keys.signing.kid == next.kid)
    #expect(keys.published.map(\.kid) == [next.kid, old])
    #expect(keys.retiring.first?.retireAt == self.now.addingTimeInterval(300))
    #expect(try self.load(.switched).signing.kid == next.kid)
  }

  @Test func aCorruptRecordStopsTheStartNamingTheFile() throws {
    _ = try self.switched()
    try "{".write(toFile: self.directory + "/" + JWTKeyFiles.retiringFileName, atomically: true, encoding: .utf8)
    #expect {
      try self.load(.switched)
    } throws: { error in
      "\(error)".contains(JWTKeyFiles.retiringFileName)
    }
  }
}
