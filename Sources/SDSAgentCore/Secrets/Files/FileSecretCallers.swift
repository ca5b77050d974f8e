/// In node-agent mode, the identities that may have `file-cert:` and `file-root:` names under a
/// directory: `dir=/etc/tls/edge,callers=spiffe://…/sa/gateway+spiffe://…`. The deepest such
/// directory holding a path decides; a path under none is served to nobody.
package struct FileSecretCallers: Sendable, Hashable, CustomStringConvertible {
  package let directory: String
  package let callers: [SPIFFEID]

  package static let syntax = "dir=/absolute/directory,callers=SPIFFE-ID[+SPIFFE-ID…] (a mapping in YAML)"

  package init(directory: String, callers: [SPIFFEID]) {
    self.directory = directory.count > 1 && directory.hasSuffix("/") ? String(directory.dropLast()) : directory
    self.callers = callers
  }

  package init(parsing text: String) throws(ConfigurationError) {
    var directory: String?
    var callers: [SPIFFEID]?
    for field in text.split(separator: ",") {
      let parts = field.split(separator: "=", maxSplits: 1).map(String.init)
      guard parts.count == 2 else {
        throw ConfigurationError(key: "file-secret-callers", value: text, allowed: Self.syntax)
      }
      switch parts[0] {
      case "dir" where directory == nil:
        guard parts[1].hasPrefix("/"), !parts[1].split(separator: "/").contains(where: { $0 == ".." || $0 == "." })
        else {
          throw ConfigurationError(
            key: "file-secret-callers", value: text, allowed: "dir as an absolute path without . or ..")
        }
        directory = parts[1]
      case "callers" where callers == nil:
        var parsed: [SPIFFEID] = []
        for id in parts[1].split(separator: "+") {
          do throws(SPIFFEIDError) {
            parsed.append(try SPIFFEID(parsing: String(id)))
          } catch {
            throw ConfigurationError(
              key: "file-secret-callers", value: text, allowed: "SPIFFE IDs joined by + (\(error.reason))",
              cause: error)
          }
        }
        callers = parsed
      default:
        throw ConfigurationError(
          key: "file-secret-callers", value: "\(BoundedText(parts[0], limit: 40))",
          allowed: "the keys dir and callers, each once")
      }
    }
    guard let directory, let callers, !callers.isEmpty else {
      throw ConfigurationError(key: "file-secret-callers", value: text, allowed: Self.syntax)
    }
    self.init(directory: directory, callers: callers)
  }

  package var description: String {
    "dir=\(self.directory),callers=" + self.callers.map(\.description).joined(separator: "+")
  }
}
