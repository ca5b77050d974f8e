import Foundation
import Logging
import SDSAgent
import SDSAgentCore

/// Where `ca serve --datastore` finds its shared state, as its settings give it.
package struct DatastoreConfiguration: Sendable {
  /// `--datastore`, password included if the URL has one.
  package var url: String
  package var passwordFile: String?
  package var keyEncryptionKeyFile: String
  /// `--replica-name`; `nil`: `host:port` of the listener.
  package var replicaName: String?

  package init(url: String, passwordFile: String? = nil, keyEncryptionKeyFile: String, replicaName: String? = nil) {
    self.url = url
    self.passwordFile = passwordFile
    self.keyEncryptionKeyFile = keyEncryptionKeyFile
    self.replicaName = replicaName
  }
}

extension CAServer {
  /// The shared roots: loaded from the datastore, or made there by the first replica. The trust
  /// bundle is then written to `<state-dir>/ca-cert.pem`, where agents take their `--ca-root`.
  static func sharedRoots(
    _ datastore: DatastoreConfiguration, configuration: CAServerConfiguration, logger: Logger
  ) async throws -> (store: CADatastore, state: SharedCAState) {
    let address = try DatastoreAddress(
      parsing: datastore.url, passwordFile: datastore.passwordFile, environment: ProcessInfo.processInfo.environment)
    let key = try KeyEncryptionKey.load(path: datastore.keyEncryptionKeyFile)
    let replica = datastore.replicaName ?? "\(configuration.host):\(configuration.port)"
    let store = CADatastore(address: address, keyEncryptionKey: key, replicaName: replica, logger: logger)
    let state = try await store.bootstrap(
      source: configuration.caSource, stateDirectory: configuration.stateDirectory,
      trustDomain: configuration.trustDomain, now: Date())
    logger.notice(
      "datastore: CA loaded",
      metadata: [
        "datastore": "\(address)", "replica": "\(replica)", "root": "\(state.roots.signing.certificate.serialHex)",
      ])
    try TrustBundleFile.write(state.roots.trustBundle, stateDirectory: configuration.stateDirectory)
    return (store, state)
  }
}
