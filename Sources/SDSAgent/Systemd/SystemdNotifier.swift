import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// The sd_notify protocol, implemented directly: one datagram to `$NOTIFY_SOCKET` per message
/// (`READY=1`, `STATUS=…`, `WATCHDOG=1`, `RELOADING=1`, `STOPPING=1`). Without `NOTIFY_SOCKET`
/// every call does nothing, so the agent runs the same outside systemd.
package struct SystemdNotifier: Sendable {
  let address: UnixSocketAddress?

  /// An unusable `$NOTIFY_SOCKET` (a path too long) counts as none, as in `sd_notify`.
  package init(environment: [String: String] = ProcessInfo.processInfo.environment) {
    self.address = environment["NOTIFY_SOCKET"].flatMap {
      $0.isEmpty ? nil : try? UnixSocketAddress(systemdNotation: $0)
    }
  }

  package var isEnabled: Bool { self.address != nil }

  package func ready(status: String? = nil) { self.send(["READY=1"] + (status.map { ["STATUS=\($0)"] } ?? [])) }
  package func reloading() {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    let microseconds = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
    self.send(["RELOADING=1", "MONOTONIC_USEC=\(microseconds)"])
  }
  package func stopping() { self.send(["STOPPING=1"]) }
  package func watchdog(status: String? = nil) { self.send(["WATCHDOG=1"] + (status.map { ["STATUS=\($0)"] } ?? [])) }
  package func status(_ text: String) { self.send(["STATUS=\(text)"]) }

  package func send(_ assignments: [String]) {
    guard let address = self.address else { return }
    // Non-blocking: a supervisor that stops reading (its queue holds `net.unix.max_dgram_qlen`
    // datagrams, 10 by default) costs a lost status line, never a thread stuck in sendto.
    let fd = socket(
      AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
    guard fd >= 0 else { return }
    defer { close(fd) }
    _ = address.send(Array(assignments.joined(separator: "\n").utf8), from: fd)
  }

  /// Half of `$WATCHDOG_USEC` when the watchdog is on for this process.
  package static func watchdogInterval(environment: [String: String] = ProcessInfo.processInfo.environment) -> Duration?
  {
    guard let usec = environment["WATCHDOG_USEC"].flatMap(UInt64.init), usec > 0 else { return nil }
    if let pid = environment["WATCHDOG_PID"].flatMap(Int32.init), pid != getpid() { return nil }
    return .microseconds(usec / 2)
  }
}
