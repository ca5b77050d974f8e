import SDSAgentCore
import Testing

/// The table of `file-cert:` and `file-root:` names followed (issue #21, class 3): bounded per
/// caller, counting only names whose files exist, and forgetting names nobody holds.
@Suite struct OnTheFlyFileTableTests {
  let start = ContinuousClock.now
  let alice = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/web/sa/frontend")
  let mallory = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/evil/sa/flood")

  func secret(_ file: String) throws -> OnTheFlyFileSecret {
    try OnTheFlyFileSecret(parsing: "file-root:/etc/tls/\(file)", directories: ["/etc/tls"])
  }

  @Test func namesWhoseFilesAreMissingDoNotCrowdOutOnesThatExist() throws {
    var table = OnTheFlyFileTable(maximumPerCaller: 4)
    let flood = try (0..<4).map { try self.secret("missing-\($0).pem") }
    #expect(table.hold(flood, by: 1, caller: self.alice, now: self.start).isEmpty)
    for secret in flood { table.record(secret.name, .missing, now: self.start) }
    #expect(table.counts(of: self.alice, now: self.start) == (0, 4))
    let real = try self.secret("real.pem")
    #expect(table.hold([real], by: 2, caller: self.alice, now: self.start).isEmpty)
    // More missing names than the bound: the extra one is dropped once it is found missing.
    let more = try self.secret("missing-4.pem")
    #expect(table.hold(flood + [more], by: 1, caller: self.alice, now: self.start).isEmpty)
    table.record(more.name, .missing, now: self.start)
    #expect(table.rows[more.name] == nil)
    #expect(table.counts(of: self.alice, now: self.start) == (1, 4))
  }

  @Test func theBoundIsPerCaller() throws {
    var table = OnTheFlyFileTable(maximumPerCaller: 2)
    let names = try (0..<3).map { try self.secret("m-\($0).pem") }
    #expect(table.hold(names, by: 1, caller: self.mallory, now: self.start) == [names[2].name])
    // Another caller is not affected, even for a name mallory holds.
    #expect(table.hold([try self.secret("a.pem"), names[0]], by: 2, caller: self.alice, now: self.start).isEmpty)
    #expect(table.counts(of: self.alice, now: self.start) == (2, 0))
    #expect(table.counts(of: self.mallory, now: self.start) == (2, 0))
  }

  @Test func aNameNobodyHoldsIsDroppedAfterTheIdleTimeout() throws {
    var table = OnTheFlyFileTable(maximumPerCaller: 8, idleTimeout: .seconds(60))
    let held = try self.secret("held.pem")
    let fetched = try self.secret("fetched.pem")
    let released = try self.secret("released.pem")
    _ = table.hold([held, released], by: 1, caller: self.alice, now: self.start)
    _ = table.hold([fetched], by: nil, caller: self.alice, now: self.start)
    // The stream now asks only for `held`: `released` is kept for the idle timeout.
    _ = table.hold([held], by: 1, caller: self.alice, now: self.start + .seconds(30))
    #expect(table.expire(now: self.start + .seconds(59)).isEmpty)
    #expect(table.expire(now: self.start + .seconds(60)) == [fetched.name])
    #expect(table.expire(now: self.start + .seconds(90)) == [released.name])
    table.release(1, now: self.start + .seconds(100))
    #expect(table.expire(now: self.start + .seconds(159)).isEmpty)
    #expect(table.expire(now: self.start + .seconds(160)) == [held.name])
    #expect(table.rows.isEmpty)
  }
}
