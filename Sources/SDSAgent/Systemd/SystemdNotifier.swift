import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// The sd_notify protocol, implemented directly: one datagram to `$NOTIFY_SOCKET` per message
/// (`READY=1`, `STATUS=…`, `WATCHDOG=1`, `RELOADING=1`, `STOPPING=1`). Without `NOTIFY_SOCKET`
/// every call does nothing, so the agent runs the same outside systemd.
public struct SystemdNotifier: Sendable {
  let socketPath: String?

  public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
    self.socketPath = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
  }

  public var isEnabled: Bool { self.socketPath != nil }

  public func ready(status: String? = nil) { self.send(["READY=1"] + (status.map { ["STATUS=\($0)"] } ?? [])) }
  public func reloading() {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    let microseconds = UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
    self.send(["RELOADING=1", "MONOTONIC_USEC=\(microseconds)"])
  }
  public func stopping() { self.send(["STOPPING=1"]) }
  public func watchdog(status: String? = nil) { self.send(["WATCHDOG=1"] + (status.map { ["STATUS=\($0)"] } ?? [])) }
  public func status(_ text: String) { self.send(["STATUS=\(text)"]) }

  public func send(_ assignments: [String]) {
    guard let path = self.socketPath else { return }
    let message = Array(assignments.joined(separator: "\n").utf8)
    let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { return }
    defer { close(fd) }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    var pathBytes = Array(path.utf8)
    // An abstract socket is written with a leading '@' and addressed with a leading NUL.
    if pathBytes.first == UInt8(ascii: "@") { pathBytes[0] = 0 }
    let capacity = MemoryLayout.size(ofValue: address.sun_path)
    guard pathBytes.count < capacity else { return }
    withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: pathBytes) }
    let length = socklen_t(MemoryLayout<sa_family_t>.size + pathBytes.count + (pathBytes.first == 0 ? 0 : 1))
    _ = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { addressPointer in
        message.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, 0, addressPointer, length) }
      }
    }
  }

  /// Half of `$WATCHDOG_USEC` when the watchdog is on for this process.
  public static func watchdogInterval(environment: [String: String] = ProcessInfo.processInfo.environment) -> Duration?
  {
    guard let usec = environment["WATCHDOG_USEC"].flatMap(UInt64.init), usec > 0 else { return nil }
    if let pid = environment["WATCHDOG_PID"].flatMap(Int32.init), pid != getpid() { return nil }
    return .microseconds(usec / 2)
  }
}
