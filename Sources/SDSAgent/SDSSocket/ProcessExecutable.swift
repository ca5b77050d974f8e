import Foundation

/// The executable of a process, read from `/proc` so that a pid reused meanwhile is noticed:
/// the process's start time is compared before and after (as SPIRE's Unix attestor does).
enum ProcessExecutable {
  static func path(of pid: Int32) -> String? {
    guard let before = self.startTime(of: pid) else { return nil }
    guard let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/exe") else {
      return nil
    }
    guard self.startTime(of: pid) == before else { return nil }
    return path
  }

  /// Field 22 of `/proc/<pid>/stat`, in clock ticks since boot.
  static func startTime(of pid: Int32) -> UInt64? {
    guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/stat") else { return nil }
    let text = String(decoding: data, as: UTF8.self)
    // The command name (field 2) is in parentheses and may contain spaces; count after it.
    guard let close = text.lastIndex(of: ")") else { return nil }
    let fields = text[text.index(after: close)...].split(separator: " ")
    // fields[0] is field 3 (state), so field 22 is fields[19].
    guard fields.count > 19 else { return nil }
    return UInt64(fields[19])
  }
}
