import Foundation
import Logging
import SDSAgentCore
import Synchronization

/// The agent's logging: one level for every logger that reload can change, and two formats —
/// plain lines for the journal (with a syslog priority prefix when stderr is the journal) and
/// JSON lines. Messages are stable; details travel as metadata.
package final class AgentLogging: Sendable {
  private let state: Mutex<Logger.Level>
  let format: AgentConfiguration.LogFormat
  let toJournal: Bool

  init(level: Logger.Level, format: AgentConfiguration.LogFormat, toJournal: Bool) {
    self.state = Mutex(level)
    self.format = format
    self.toJournal = toJournal
  }

  package var level: Logger.Level {
    get { self.state.withLock { $0 } }
    set { self.state.withLock { $0 = newValue } }
  }

  /// Installs the handler for the whole process; call once.
  package static func bootstrap(level: Logger.Level, format: AgentConfiguration.LogFormat) -> AgentLogging {
    let logging = AgentLogging(
      level: level,
      format: format,
      toJournal: ProcessInfo.processInfo.environment["JOURNAL_STREAM"] != nil
    )
    LoggingSystem.bootstrap { label in AgentLogHandler(label: label, logging: logging) }
    return logging
  }
}

struct AgentLogHandler: LogHandler {
  let label: String
  let logging: AgentLogging
  var metadata: Logger.Metadata = [:]
  private var overrideLevel: Logger.Level?

  init(label: String, logging: AgentLogging) {
    self.label = label
    self.logging = logging
  }

  var logLevel: Logger.Level {
    get { self.overrideLevel ?? self.logging.level }
    set { self.overrideLevel = newValue }
  }

  subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { self.metadata[key] }
    set { self.metadata[key] = newValue }
  }

  func log(event: LogEvent) {
    let merged = self.metadata.merging(event.metadata ?? [:]) { $1 }
    let line = self.line(level: event.level, message: "\(event.message)", metadata: merged, at: Date())
    FileHandle.standardError.write(Data(line.utf8))
  }

  /// One log line, newline included. Every part but the level and the label may carry a
  /// client's text (a resource name, a node id, Envoy's NACK message), so each is escaped
  /// (`BoundedText.escaped`) here, once for every call site: a line stays one line, and no ESC
  /// or CR reaches a terminal or the journal.
  func line(level: Logger.Level, message: String, metadata: Logger.Metadata, at date: Date) -> String {
    let message = BoundedText.escaped(message)
    let fields = metadata.map { (key: BoundedText.escaped($0.key), value: BoundedText.escaped("\($0.value)")) }
    switch self.logging.format {
    case .plain:
      let details = fields.sorted { $0.key < $1.key }.map { "\($0.key)=\(Self.quoted($0.value))" }.joined(
        separator: " ")
      let text = details.isEmpty ? message : "\(message) \(details)"
      if self.logging.toJournal {
        return "<\(Self.syslogPriority(level))>\(text)\n"
      }
      return "\(date.formatted(.iso8601)) \(level) \(text)\n"
    case .json:
      var object: [String: String] = fields.reduce(into: [:]) { $0[$1.key] = $1.value }
      object["ts"] = date.formatted(.iso8601)
      object["level"] = "\(level)"
      object["msg"] = message
      object["logger"] = self.label
      let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
      return String(decoding: data, as: UTF8.self) + "\n"
    }
  }

  static func quoted(_ value: String) -> String {
    value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" })
      ? "\"\(value.replacingOccurrences(of: "\"", with: "\\\""))\"" : value
  }

  static func syslogPriority(_ level: Logger.Level) -> Int {
    switch level {
    case .trace, .debug: return 7
    case .info: return 6
    case .notice: return 5
    case .warning: return 4
    case .error: return 3
    case .critical: return 2
    }
  }
}
