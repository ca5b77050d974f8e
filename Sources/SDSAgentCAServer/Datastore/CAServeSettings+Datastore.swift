import SDSAgent
import SDSAgentCore

/// `ca serve`'s settings for replicas sharing one CA in PostgreSQL.
extension CAServeSettings {
  package static let datastore = Setting<String>(
    "datastore", "URL",
    help: "PostgreSQL URL of the CA state replicas share (postgresql://USER@HOST:PORT/DB?sslmode=…): roots, sealed "
      + "keys; without it, the state directory holds them.",
    allowed: "a postgresql:// URL", reload: .restart,
    parse: { text throws(ConfigurationError) in
      _ = try DatastoreAddress(parsing: text)
      return text
    })

  package static let datastorePasswordFile = Setting<String>(
    "datastore-password-file", "FILE",
    help: "File holding the datastore password (default: the URL's, or PGPASSWORD).",
    allowed: "a path", reload: .restart, parse: AgentSettings.nonEmpty)

  package static let keyEncryptionKey = Setting<String>(
    "key-encryption-key", "FILE",
    help: "File of 32 random bytes (mode 0600) sealing the CA keys in --datastore; the same on every replica.",
    allowed: "a path", reload: .restart, parse: AgentSettings.nonEmpty)

  package static let replicaName = Setting<String>(
    "replica-name", "NAME",
    help: "This replica's name in the datastore (default HOST:PORT of --listen).",
    allowed: "a name of at most 128 characters",
    reload: .restart, parse: { $0.isEmpty || $0.count > 128 ? nil : $0 })
}
