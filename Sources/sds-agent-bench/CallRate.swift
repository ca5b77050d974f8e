import Foundation
import SDSAgentCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// Calls/s at one concurrency, with what the server process and the bench client spent meanwhile:
/// their CPU time over the measured interval. Client and server share the machine, so the
/// client's share says whether it, rather than the server, was the limit; the server's CPU per
/// call is its cost whatever else ran beside it.
struct CallRate {
  let calls: Int
  let elapsed: Duration
  let serverCPU: Duration
  let clientCPU: Duration

  var perSecond: Double { Double(self.calls) / max(self.elapsed.seconds, 1e-9) }
  /// Calls per second of the server's CPU: what one core of it would do.
  var perServerCoreSecond: Double { Double(self.calls) / max(self.serverCPU.seconds, 1e-9) }
  var serverCPUPerCall: Duration { self.serverCPU / max(self.calls, 1) }

  var rate: String { String(format: "%.0f", self.perSecond) }
  var perCore: String { self.serverCPU == .zero ? "-" : String(format: "%.0f", self.perServerCoreSecond) }
  var clientShare: String { String(format: "%.0f%%", self.clientCPU.seconds / max(self.elapsed.seconds, 1e-9) * 100) }
  var serverShare: String { String(format: "%.0f%%", self.serverCPU.seconds / max(self.elapsed.seconds, 1e-9) * 100) }

  /// Runs `call` from `concurrency` tasks for about `seconds` (each task at least once); `call`
  /// gets its task's number and its own count of calls so far.
  static func measure(
    concurrency: Int, seconds: Double, server: ChildProcess?,
    _ call: @escaping @Sendable (_ task: Int, _ index: Int) async throws -> Void
  ) async throws -> CallRate {
    let serverBefore = server?.processorTime ?? .zero
    let clientBefore = ProcessorTime.used()
    let started = ContinuousClock.now
    let calls = try await withThrowingTaskGroup(of: Int.self) { group in
      for task in 0..<concurrency {
        group.addTask {
          var count = 0
          repeat {
            try await call(task, count)
            count += 1
          } while (ContinuousClock.now - started).seconds < seconds
          return count
        }
      }
      return try await group.reduce(0, +)
    }
    let elapsed = ContinuousClock.now - started
    return CallRate(
      calls: calls, elapsed: elapsed, serverCPU: (server?.processorTime ?? serverBefore) - serverBefore,
      clientCPU: ProcessorTime.used() - clientBefore)
  }

  /// Runs `body` on one thread for about `seconds` (at least three times): runs per second of
  /// that thread's own CPU time, which other processes on a shared machine do not inflate.
  static func inProcess(seconds: Double, _ body: () throws -> Void) rethrows -> Double {
    let started = ContinuousClock.now
    let cpuBefore = Self.threadCPU()
    var count = 0
    while (ContinuousClock.now - started).seconds < seconds || count < 3 {
      try body()
      count += 1
    }
    return Double(count) / max((Self.threadCPU() - cpuBefore).seconds, 1e-9)
  }

  /// CPU time the calling thread has used.
  private static func threadCPU() -> Duration {
    var time = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &time)
    return .seconds(Int64(time.tv_sec)) + .nanoseconds(Int64(time.tv_nsec))
  }

  static func ratio(_ value: Double, to peer: Double) -> String {
    peer > 0 ? String(format: "%.2f×", value / peer) : "-"
  }
}
