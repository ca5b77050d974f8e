import SDSAgentCore

extension AdminRoutes {
  /// The node's session ticket keys by name: epoch and fingerprint only.
  static func sessionTicketKeys(_ served: ServedSecrets?) -> [AdminAPI.Secret] {
    (served?.sessionTicketKeys ?? [:]).sorted { $0.key < $1.key }.map { name, entry in
      .sessionTicketKeys(
        .init(name: name, epoch: entry.keys.epoch, fingerprint: entry.keys.fingerprint, version: entry.revision))
    }
  }
}
