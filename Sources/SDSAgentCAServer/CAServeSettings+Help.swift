import SDSAgent

extension CAServeSettings {
  /// The options section of `ca serve --help`, generated from `all`, in lines shorter than
  /// `width` so that ArgumentParser does not wrap them again.
  package static func help(width: Int = 80) -> String {
    var lines = ["OPTIONS (each also SDS_AGENT_CA_SERVE_<KEY> in the environment):"]
    for setting in all {
      let value = setting.kind == .flag ? "" : " <\(setting.valueName.lowercased())>"
      var text = setting.help
      if let shown = setting.shownDefault { text += " Default: \(shown)." }
      if setting.kind.isRepeatable { text += " Repeatable." }
      lines.append("  --\(setting.key)\(value)")
      lines += AgentSettings.wrap(text, width: width - 10).map { "        " + $0 }
    }
    return lines.joined(separator: "\n")
  }
}
