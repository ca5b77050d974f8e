import Foundation
import SDSAgentCore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// A real PostgreSQL (Debian's package) for a test, in a temporary directory: PostgreSQL refuses
/// to run as root, so the directory is given to `nobody` and its programs run through `setpriv`;
/// it listens on 127.0.0.1 on a free port, loopback trusted. `pg_ctl -w` waits for it to accept
/// connections and to stop. Stop it with `stop()` at the end of the test.
package final class TemporaryPostgreSQL: Sendable {
  package let port: Int
  package let directory: String
  let binDirectory: String

  /// The newest installed version's programs (`/usr/lib/postgresql/*/bin`), if any.
  package static var binDirectory: String? {
    let root = "/usr/lib/postgresql"
    let versions = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
    guard let newest = versions.compactMap({ Int($0) }).max() else { return nil }
    let bin = "\(root)/\(newest)/bin"
    return FileManager.default.fileExists(atPath: "\(bin)/initdb") ? bin : nil
  }

  package static var isInstalled: Bool { self.binDirectory != nil }

  /// Initialises a cluster and starts it.
  package init() throws {
    guard let binDirectory = Self.binDirectory else {
      throw TestPostgreSQLError("PostgreSQL is not installed (/usr/lib/postgresql/*/bin): dev/requirements.sh install")
    }
    self.binDirectory = binDirectory
    self.directory = TemporaryDirectory.make()
    self.port = try Self.freePort()
    // Its mode set here: a test binding a Unix socket narrows the process's umask for a moment.
    guard chmod(self.directory, 0o700) == 0 else { throw TestPostgreSQLError("cannot chmod \(self.directory)") }
    if geteuid() == 0, let nobody = getpwnam("nobody") {
      guard chown(self.directory, nobody.pointee.pw_uid, nobody.pointee.pw_gid) == 0 else {
        throw TestPostgreSQLError("cannot give \(self.directory) to nobody")
      }
    }
    try self.run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
    try self.run(
      "pg_ctl", "-D", self.data, "-l", "\(self.directory)/postgres.log", "-w", "-t", "60", "-o",
      "-p \(self.port) -k \(self.directory) -c listen_addresses=127.0.0.1 -c fsync=off", "start")
  }

  var data: String { "\(self.directory)/data" }

  /// `postgresql://postgres@127.0.0.1:PORT/DATABASE?sslmode=disable`.
  package func url(database: String) -> String {
    "postgresql://postgres@127.0.0.1:\(self.port)/\(database)?sslmode=disable"
  }

  /// Runs `sql` with psql as the superuser; its output.
  @discardableResult
  package func psql(_ sql: String, database: String = "postgres") throws -> String {
    try self.run(
      "psql", "-h", "127.0.0.1", "-p", "\(self.port)", "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1",
      "-Atc", sql)
  }

  /// Stops the server (fast shutdown) and removes its directory.
  package func stop() {
    _ = try? self.run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
    try? FileManager.default.removeItem(atPath: self.directory)
  }

  @discardableResult
  private func run(_ program: String, _ arguments: String...) throws -> String {
    // posix_spawn and waitpid: the server `pg_ctl start` leaves behind must not hold up the wait.
    let outputPath = "\(self.directory)/\(program).out"
    let asNobody = geteuid() == 0
    let argv =
      (asNobody
        ? [
          "/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "\(self.binDirectory)/\(program)",
        ]
        : ["\(self.binDirectory)/\(program)"]) + arguments
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    var cArguments = argv.map { strdup($0) } + [nil]
    defer { cArguments.forEach { free($0) } }
    var pid = pid_t()
    let spawned = posix_spawn(&pid, argv[0], &actions, nil, &cArguments, environ)
    guard spawned == 0 else { throw TestPostgreSQLError("cannot run \(program): error \(spawned)") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
    // WIFEXITED and WEXITSTATUS, which Swift does not import.
    guard status & 0x7f == 0, (status >> 8) & 0xff == 0 else {
      throw TestPostgreSQLError("\(program) ended with status \(status): \(text.suffix(2000))")
    }
    return text
  }

  private static func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestPostgreSQLError("socket: \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
      pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
      }
    }
    guard bound else { throw TestPostgreSQLError("bind: \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
  }
}

/// Why a test's PostgreSQL could not be set up.
package struct TestPostgreSQLError: AgentFailure {
  package enum Code: String, Sendable {
    case setup
  }

  package let message: String

  init(_ message: String) {
    self.message = message
  }

  package var code: Code { .setup }
  package var description: String { self.failureText }
}
