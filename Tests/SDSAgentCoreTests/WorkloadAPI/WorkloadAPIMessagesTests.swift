import SDSAgentCore
import Synchronization
import Testing

/// A Workload API message is built once per identity and revision, whichever stream asks first,
/// and never handed to another identity or for other revisions.
@Suite struct WorkloadAPIMessagesTests {
  /// Counts its builds; each build's message names the revisions and the build.
  final class Builder: Sendable {
    let builds = Atomic(0)

    func build(_ revisions: [UInt64]) -> String {
      let count = self.builds.add(1, ordering: .relaxed).newValue
      return "\(revisions) build \(count)"
    }
  }

  @Test func streamsOfOneIdentityShareOneBuildPerRevision() throws {
    let memo = WorkloadAPIMessages<String>()
    let cache = SecretCache()
    let builder = Builder()
    let first = try memo.message(for: cache, at: [3, 2, 2]) { builder.build([3, 2, 2]) }
    let second = try memo.message(for: cache, at: [3, 2, 2]) { builder.build([3, 2, 2]) }
    #expect(first == second)
    #expect(builder.builds.load(ordering: .relaxed) == 1)

    let rotated = try memo.message(for: cache, at: [5, 2, 2]) { builder.build([5, 2, 2]) }
    #expect(rotated == "[5, 2, 2] build 2")
    #expect(try memo.message(for: cache, at: [5, 2, 2]) { builder.build([5, 2, 2]) } == rotated)
    #expect(builder.builds.load(ordering: .relaxed) == 2)
  }

  @Test func anotherIdentityBuildsItsOwn() throws {
    let memo = WorkloadAPIMessages<String>()
    let (one, other) = (SecretCache(), SecretCache())
    let builder = Builder()
    let mine = try memo.message(for: one, at: [3, 2, 2]) { builder.build([3, 2, 2]) }
    let theirs = try memo.message(for: other, at: [3, 2, 2]) { builder.build([3, 2, 2]) }
    #expect(mine != theirs)
    #expect(builder.builds.load(ordering: .relaxed) == 2)
  }

  @Test func aLateOlderBuildDoesNotReplaceTheNewerMessage() throws {
    let memo = WorkloadAPIMessages<String>()
    let cache = SecretCache()
    let builder = Builder()
    let newer = try memo.message(for: cache, at: [7, 2, 2]) { builder.build([7, 2, 2]) }
    let older = try memo.message(for: cache, at: [5, 2, 2]) { builder.build([5, 2, 2]) }
    #expect(older == "[5, 2, 2] build 2", "a stream still at the older revision gets the older message")
    #expect(try memo.message(for: cache, at: [7, 2, 2]) { builder.build([7, 2, 2]) } == newer)
    #expect(builder.builds.load(ordering: .relaxed) == 2)
  }

  @Test func aFailedBuildIsThrownAndNotKept() throws {
    let memo = WorkloadAPIMessages<String>()
    let cache = SecretCache()
    #expect(throws: WorkloadAPIFailure.self) {
      try memo.message(for: cache, at: [3, 2, 2]) { () throws(WorkloadAPIFailure) -> String in
        throw WorkloadAPIFailure(.encoding, "cannot encode")
      }
    }
    #expect(try memo.message(for: cache, at: [3, 2, 2]) { "built" } == "built")
  }
}
