import Foundation

/// Where the agent keeps its socket and state when the operator does not say: systemd's
/// directories when it runs there, otherwise places a non-root user can write.
package struct DefaultPaths: Sendable, Equatable {
  package let socketPath: String
  package let stateDirectory: String

  package static func resolve(environment: [String: String] = ProcessInfo.processInfo.environment) -> DefaultPaths {
    // systemd's RuntimeDirectory= and StateDirectory= set these for the service.
    let runtime = environment["RUNTIME_DIRECTORY"].flatMap { $0.split(separator: ":").first.map(String.init) }
    let state = environment["STATE_DIRECTORY"].flatMap { $0.split(separator: ":").first.map(String.init) }
    if let runtime, let state {
      return DefaultPaths(socketPath: runtime + "/sds.sock", stateDirectory: state)
    }
    if getuid() == 0 {
      return DefaultPaths(socketPath: "/run/sds-agent/sds.sock", stateDirectory: "/var/lib/sds-agent")
    }
    let socketDirectory: String
    if let xdg = environment["XDG_RUNTIME_DIR"], !xdg.isEmpty {
      socketDirectory = xdg + "/sds-agent"
    } else {
      socketDirectory = FileManager.default.currentDirectoryPath + "/.sds-agent"
    }
    let stateDirectory: String
    if let xdgState = environment["XDG_STATE_HOME"], !xdgState.isEmpty {
      stateDirectory = xdgState + "/sds-agent"
    } else if let home = environment["HOME"], !home.isEmpty {
      stateDirectory = home + "/.local/state/sds-agent"
    } else {
      stateDirectory = FileManager.default.currentDirectoryPath + "/.sds-agent/state"
    }
    return DefaultPaths(
      socketPath: runtime.map { $0 + "/sds.sock" } ?? socketDirectory + "/sds.sock",
      stateDirectory: state ?? stateDirectory)
  }
}
