extension AgentSettings {
  /// The options section of `run --help`, generated from `all`, in lines shorter than `width`
  /// so that ArgumentParser does not wrap them again.
  package static func help(width: Int = 80) -> String {
    var lines = [
      "OPTIONS (each also SDS_AGENT_<KEY> in the environment and <key> in the",
      "--config file; options > environment > file > defaults):",
    ]
    for setting in all {
      let value = setting.kind == .flag ? "" : " <\(setting.valueName.lowercased())>"
      var text = setting.help
      if let shown = setting.shownDefault { text += " Default: \(shown)." }
      if setting.kind == .flag { text += " As \(setting.environmentName) or in the file: true or false." }
      if setting.sources.contains(.file) {
        text += setting.reload.isLive ? " Reload applies it." : " Changes need a restart."
      } else {
        text += " Also \(setting.environmentName); not in the file."
      }
      lines.append("  --\(setting.key)\(value)")
      lines += Self.wrap(text, width: width - 10).map { "        " + $0 }
    }
    return lines.joined(separator: "\n")
  }

  package static func wrap(_ text: String, width: Int) -> [String] {
    var lines: [String] = []
    var line = ""
    for word in text.split(separator: " ") {
      if !line.isEmpty, line.count + 1 + word.count > width {
        lines.append(line)
        line = ""
      }
      line += line.isEmpty ? String(word) : " " + word
    }
    if !line.isEmpty { lines.append(line) }
    return lines
  }
}
