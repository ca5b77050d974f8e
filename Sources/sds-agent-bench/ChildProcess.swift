import Foundation
import SDSAgentCore
import Synchronization

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// A process the bench started. Stopping it sends SIGTERM, then SIGKILL if it is still running
/// after `stopBound`, and returns only once it has exited and been reaped.
final class ChildProcess: Sendable {
  /// 5 s, or `SDS_AGENT_BENCH_STOP_SECONDS`: an agent under valgrind needs longer to exit, and
  /// writes its profile only if it does (`Benchmarks/push-callgrind.sh`).
  static let stopBound: Duration = .seconds(
    ProcessInfo.processInfo.environment["SDS_AGENT_BENCH_STOP_SECONDS"].flatMap { Int($0) } ?? 5)

  let process = Process()
  private let exited = Milestone()

  /// Starts `executable`, registered with `children`, which stops it at the latest.
  init(
    _ executable: String,
    _ arguments: [String],
    standardOutput: Pipe? = nil,
    in children: ChildProcesses
  ) throws {
    self.process.executableURL = URL(fileURLWithPath: executable)
    self.process.arguments = arguments
    self.process.standardOutput = standardOutput ?? FileHandle.nullDevice
    let exited = self.exited
    let running = children.running
    running.enter()
    // Foundation calls this once it has reaped the child.
    self.process.terminationHandler = { _ in
      exited.reach()
      running.leave()
    }
    do {
      try self.process.run()
    } catch {
      running.leave()
      throw BenchError(.process, "cannot start \(executable)", cause: error)
    }
    children.add(self)
  }

  var pid: Int32 { self.process.processIdentifier }

  /// Resident set size in KiB: VmRSS from /proc/PID/status.
  var residentKiB: Int {
    let status = (try? String(contentsOfFile: "/proc/\(self.pid)/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
    return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
  }

  /// CPU time the process has used, user and system (`utime` and `stime` of /proc/PID/stat, in
  /// clock ticks: 10 ms at the usual 100 Hz).
  var processorTime: Duration {
    let times = self.processorTimes
    return times.user + times.system
  }

  /// CPU time in user space and in the kernel (the socket writes), from /proc, in clock ticks
  /// (10 ms).
  var processorTimes: (user: Duration, system: Duration) {
    let stat = (try? String(contentsOfFile: "/proc/\(self.pid)/stat", encoding: .utf8)) ?? ""
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields = stat.split(separator: ")", maxSplits: 1).last?.split(separator: " ") ?? []
    guard fields.count > 13, let user = Int64(fields[11]), let system = Int64(fields[12]) else { return (.zero, .zero) }
    let ticks = max(Int64(sysconf(Int32(_SC_CLK_TCK))), 1)
    return (.milliseconds(user * 1000 / ticks), .milliseconds(system * 1000 / ticks))
  }

  func stop() async {
    if self.process.isRunning {
      self.process.terminate()
      let exited = self.exited
      await withTaskGroup(of: Bool.self) { group in
        group.addTask {
          await exited.wait()
          return true
        }
        group.addTask { (try? await Task.sleep(for: Self.stopBound)) == nil }
        if await group.next() == false {
          self.sendKill()
        }
        group.cancelAll()
      }
    }
    await self.exited.wait()
  }

  fileprivate func sendKill() {
    if self.process.isRunning { kill(self.pid, SIGKILL) }
  }
}

/// Every process the bench started, so that each one is stopped whatever path the run takes:
/// a normal end, an error, or SIGINT/SIGTERM to the bench itself.
final class ChildProcesses: Sendable {
  /// Entered when a child starts, left once it has been reaped.
  fileprivate let running = DispatchGroup()
  private let children = Mutex<[ChildProcess]>([])

  fileprivate func add(_ child: ChildProcess) {
    self.children.withLock { $0.append(child) }
  }

  /// Stops every child still running and waits until each one is reaped.
  func stopAll() async {
    for child in self.children.withLock({ $0 }) {
      await child.stop()
    }
  }

  /// On SIGINT or SIGTERM: stops every child (SIGKILL after the bound), then exits with 128 + the
  /// signal. The handlers last as long as the caller keeps the sources.
  func stopAllOnSignals() -> [any DispatchSourceSignal] {
    [SIGINT, SIGTERM].map { signalNumber in
      signal(signalNumber, SIG_IGN)
      let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
      source.setEventHandler {
        let children = self.children.withLock { $0 }
        for child in children where child.process.isRunning {
          child.process.terminate()
        }
        let bound = DispatchTime.now() + .seconds(Int(ChildProcess.stopBound.components.seconds))
        if self.running.wait(timeout: bound) == .timedOut {
          children.forEach { $0.sendKill() }
          self.running.wait()
        }
        exit(128 + signalNumber)
      }
      source.resume()
      return source
    }
  }
}
