import Foundation
import Testing

@testable import SDSAgent

@Suite struct ProcessExecutableTests {
  @Test func readsALiveProcessesExecutableAndNothingForAGoneOne() throws {
    let own = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
    #expect(ProcessExecutable.path(of: getpid()) == own)
    #expect(ProcessExecutable.startTime(of: getpid()) != nil)

    let child = Process()
    child.executableURL = URL(fileURLWithPath: "/bin/true")
    try child.run()
    child.waitUntilExit()
    // Reaped: its pid names no process, so no rule with an executable can match it.
    #expect(ProcessExecutable.path(of: child.processIdentifier) == nil)
  }
}
