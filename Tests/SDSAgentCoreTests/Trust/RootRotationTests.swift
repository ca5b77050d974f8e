import Foundation
import SDSAgentCore
import Testing

/// The root rotation as a value: when each step is due, and how it is persisted.
@Suite struct RootRotationTests {
  let start = Fixtures.now
  var rotation: RootRotation {
    RootRotation(preparedAt: self.start, overlap: .seconds(60), previousRootSerial: "aa", nextRootSerial: "bb")
  }

  @Test func switchesAfterTheOverlapOnceAcknowledged() {
    let rotation = self.rotation
    #expect(rotation.due(now: self.start.addingTimeInterval(59), acknowledged: true) == nil)
    #expect(rotation.due(now: self.start.addingTimeInterval(60), acknowledged: true) == .switchRoot(forced: false))
    #expect(rotation.due(now: self.start.addingTimeInterval(60), acknowledged: false) == nil)
    #expect(rotation.nextDeadline(now: self.start, acknowledged: false) == self.start.addingTimeInterval(60))
    #expect(
      rotation.nextDeadline(now: self.start.addingTimeInterval(61), acknowledged: false)
        == self.start.addingTimeInterval(120))
  }

  @Test func unacknowledgedStreamsHoldTheSwitchBackForAtMostTwoOverlaps() {
    #expect(
      self.rotation.due(now: self.start.addingTimeInterval(120), acknowledged: false) == .switchRoot(forced: true))
  }

  @Test func retiresWhenTheLastOldLeafExpires() {
    var rotation = self.rotation
    let switchedAt = self.start.addingTimeInterval(60)
    rotation.switched(at: switchedAt, lastOldLeafExpiry: switchedAt.addingTimeInterval(3600))
    #expect(rotation.phase == .switched)
    #expect(rotation.due(now: switchedAt.addingTimeInterval(3599), acknowledged: false) == nil)
    #expect(rotation.due(now: switchedAt.addingTimeInterval(3600), acknowledged: false) == .retire)
    #expect(rotation.nextDeadline(now: switchedAt, acknowledged: false) == switchedAt.addingTimeInterval(3600))
  }

  @Test func aRecordOfAnyPhaseReadsBackTheSame() throws {
    var rotation = self.rotation
    let encoder = JSONEncoder()
    encoder.dateEncodingStrategy = .secondsSince1970
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = .secondsSince1970
    #expect(try decoder.decode(RootRotation.self, from: encoder.encode(rotation)) == rotation)
    rotation.switched(at: self.start.addingTimeInterval(60), lastOldLeafExpiry: self.start.addingTimeInterval(600))
    #expect(try decoder.decode(RootRotation.self, from: encoder.encode(rotation)) == rotation)
  }

  @Test(arguments: [
    #"{"phase":"switched","prepared_at":0,"overlap_seconds":60,"switch_at":60,"switch_deadline":120,"previous_root_serial":"aa","next_root_serial":"bb"}"#,
    #"{"phase":"prepared","prepared_at":0,"overlap_seconds":-1,"switch_at":60,"switch_deadline":120,"previous_root_serial":"aa","next_root_serial":"bb"}"#,
    #"{"phase":"retiring","prepared_at":0,"overlap_seconds":60,"switch_at":60,"switch_deadline":120,"previous_root_serial":"aa","next_root_serial":"bb"}"#,
    #"{"phase":"prepared"}"#,
  ])
  func aCorruptRecordIsRefused(json: String) {
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = .secondsSince1970
    #expect(throws: (any Error).self) { try decoder.decode(RootRotation.self, from: Data(json.utf8)) }
  }
}
