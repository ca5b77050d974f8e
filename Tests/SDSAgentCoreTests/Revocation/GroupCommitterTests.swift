import SDSAgentCore
import Synchronization
import Testing

/// Concurrent callers share flushes, and none returns before the flush carrying its row has
/// ended; no row is lost, written twice or reordered.
@Suite struct GroupCommitterTests {
  struct DiskFull: Error, Equatable {}

  /// A disk whose flushes can be held open: a row is on it once the flush carrying it ended.
  final class Disk: Sendable {
    private let state = Mutex<(flushes: [[Int]], inProgress: Int, mostAtOnce: Int)>(([], 0, 0))
    private let gate: AsyncStream<Result<Void, DiskFull>>
    private let opener: AsyncStream<Result<Void, DiskFull>>.Continuation
    /// How many flushes wait for `open` before they end.
    private let held: Int

    init(holding held: Int = 0) {
      (self.gate, self.opener) = AsyncStream.makeStream()
      self.held = held
    }

    var flushes: [[Int]] { self.state.withLock { $0.flushes } }
    var mostAtOnce: Int { self.state.withLock { $0.mostAtOnce } }
    func holds(_ row: Int) -> Bool { self.state.withLock { $0.flushes.contains { $0.contains(row) } } }

    /// Ends the flush being held, written or failed.
    func open(_ outcome: Result<Void, DiskFull> = .success(())) { self.opener.yield(outcome) }

    func flush(_ rows: [Int]) async -> Result<Void, DiskFull> {
      let index = self.state.withLock { state in
        state.inProgress += 1
        state.mostAtOnce = max(state.mostAtOnce, state.inProgress)
        return state.flushes.count
      }
      var outcome = Result<Void, DiskFull>.success(())
      if index < self.held {
        for await opened in self.gate {
          outcome = opened
          break
        }
      } else {
        for _ in 0..<3 { await Task.yield() }
      }
      self.state.withLock { state in
        state.inProgress -= 1
        state.flushes.append((try? outcome.get()) == nil ? [] : rows)
      }
      return outcome
    }
  }

  /// Commits `row`; true when the row was on the disk as the call returned.
  static func commit(_ row: Int, to committer: GroupCommitter<Int, DiskFull>, on disk: Disk) async throws(DiskFull)
    -> Bool
  {
    try await committer.commit(row) { rows in await disk.flush(rows) }
    return disk.holds(row)
  }

  @Test func rowsArrivingDuringAFlushAreWrittenTogetherByTheNextAndNoCallerReturnsBefore() async throws {
    let committer = GroupCommitter<Int, DiskFull>()
    let disk = Disk(holding: 1)
    // Each task runs until it waits, so its row is submitted when `Task.immediate` returns.
    let leader = Task.immediate { try await Self.commit(0, to: committer, on: disk) }
    let followers = (1...5).map { row in Task.immediate { try await Self.commit(row, to: committer, on: disk) } }
    #expect(committer.waiting == 5)
    #expect(disk.flushes.isEmpty)
    disk.open()
    #expect(try await leader.value)
    for follower in followers { #expect(try await follower.value) }
    #expect(disk.flushes == [[0], [1, 2, 3, 4, 5]])
    #expect(committer.waiting == 0)
  }

  @Test func aFailedFlushFailsEveryCallerItCarriedAndTheNextFlushGoesOn() async throws {
    let committer = GroupCommitter<Int, DiskFull>()
    let disk = Disk(holding: 2)
    let first = Task.immediate { try await Self.commit(0, to: committer, on: disk) }
    let second = [1, 2].map { row in Task.immediate { try await Self.commit(row, to: committer, on: disk) } }
    disk.open()
    #expect(try await first.value)
    let third = [3, 4].map { row in Task.immediate { try await Self.commit(row, to: committer, on: disk) } }
    disk.open(.failure(DiskFull()))
    for task in second { await #expect(throws: DiskFull.self) { try await task.value } }
    for task in third { #expect(try await task.value) }
    #expect(disk.flushes == [[0], [], [3, 4]])
    #expect(try await Self.commit(5, to: committer, on: disk))
  }

  @Test func manyConcurrentCallersEachReturnAfterTheirRowAndEveryRowIsWrittenOnce() async throws {
    let committer = GroupCommitter<Int, DiskFull>()
    let disk = Disk()
    let rows = 2_000
    let onDiskAtReturn = try await withThrowingTaskGroup(of: Bool.self) { group in
      for row in 0..<rows {
        group.addTask { try await Self.commit(row, to: committer, on: disk) }
      }
      return try await group.reduce(into: 0) { count, onDisk in count += onDisk ? 1 : 0 }
    }
    #expect(onDiskAtReturn == rows)
    #expect(disk.flushes.flatMap { $0 }.sorted() == Array(0..<rows))
    #expect(disk.mostAtOnce == 1)
    print("\(rows) rows from concurrent callers in \(disk.flushes.count) flushes")
  }
}
