import Foundation
import Logging
import PostgresNIO
import SDSAgent
import SDSAgentCore
import SwiftASN1
import X509

/// The CA state replicas of `ca serve` share in PostgreSQL (`--datastore`): the schema, the
/// key-encryption key's verifier and the roots, each private key sealed (`KeyEncryptionKey`).
/// Start-up runs in one transaction under `DatastoreSchema.advisoryLockKey`, so of replicas
/// starting together one migrates and makes the CA, and the others load it.
package struct CADatastore: Sendable {
  package let address: DatastoreAddress
  package let keyEncryptionKey: KeyEncryptionKey
  package let replicaName: String
  let logger: Logger

  package init(address: DatastoreAddress, keyEncryptionKey: KeyEncryptionKey, replicaName: String, logger: Logger) {
    self.address = address
    self.keyEncryptionKey = keyEncryptionKey
    self.replicaName = replicaName
    self.logger = logger
  }

  /// A new connection, or an error naming `--datastore` once its connect timeout has passed.
  package func connect() async throws(DatastoreError) -> PostgresConnection {
    do {
      return try await PostgresConnection.connect(
        configuration: try self.address.configuration(), id: 1, logger: self.logger)
    } catch {
      throw DatastoreError(
        .unreachable, "\(DatastoreAddress.setting) \(self.address) cannot be reached",
        remedy: "check that PostgreSQL runs there and accepts this user (password from --datastore-password-file "
          + "or PGPASSWORD)",
        cause: PostgresFailure(error))
    }
  }

  /// Brings the schema up to date, then loads the roots and the rotation in progress, or makes
  /// the roots on an empty datastore: generated, or imported from the operator's files (`source`).
  package func bootstrap(
    source: AgentConfiguration.CASource, stateDirectory: String, trustDomain: String, now: Date
  ) async throws -> SharedCAState {
    try await self.locked("start-up") { connection in
      try await self.migrate(connection)
      try await self.checkKeyEncryptionKey(connection)
      if let state = try await self.state(connection) {
        try self.check(source, against: state, stateDirectory: stateDirectory, trustDomain: trustDomain)
        return state
      }
      // A generated root's key goes nowhere but into the datastore, sealed.
      let signing =
        source == .generated
        ? try CAMaterial.generateRoot(trustDomain: trustDomain, now: now)
        : try CAStore.load(source, stateDirectory: stateDirectory, trustDomain: trustDomain, now: now)
      try await self.insert(signing, role: "signing", imported: source != .generated, connection)
      self.logger.notice(
        "datastore: CA stored",
        metadata: ["root": "\(signing.certificate.serialHex)", "imported": "\(source != .generated)"])
      return SharedCAState(
        roots: EmbeddedCA.Roots(signing: signing), rotationRecord: nil, imported: source != .generated)
    }
  }

  /// The operator's files, when given, must be the datastore's CA: they are never silently ignored.
  private func check(
    _ source: AgentConfiguration.CASource, against state: SharedCAState, stateDirectory: String, trustDomain: String
  ) throws {
    guard source != .generated else { return }
    let given = try CAStore.load(source, stateDirectory: stateDirectory, trustDomain: trustDomain)
    guard given.certificate == state.roots.signing.certificate else {
      throw DatastoreError(
        .conflict,
        "--ca-cert is not the CA of \(DatastoreAddress.setting) \(self.address) (it signs with root "
          + "\(state.roots.signing.certificate.serialHex))",
        remedy: "start this replica without --ca-cert/--ca-key to use the datastore's CA, or use another database")
    }
  }

  /// Runs `body` in a transaction holding `DatastoreSchema.advisoryLockKey`, on a connection of
  /// its own: a replica that dies mid-way leaves nothing done, and its lock goes with it.
  func locked<Result: Sendable>(
    _ what: String, _ body: @escaping @Sendable (PostgresConnection) async throws -> Result
  ) async throws -> Result {
    let connection = try await self.connect()
    do {
      let result = try await connection.withTransaction(logger: self.logger) { connection in
        for statement in DatastoreSchema.transactionStart {
          try await connection.query(statement, logger: self.logger)
        }
        return try await body(connection)
      }
      try? await connection.close()
      return result
    } catch let error as PostgresTransactionError {
      try? await connection.close()
      if let other = error.closureError, !(other is PSQLError) { throw other }
      throw DatastoreError(.query, "the datastore's \(what) transaction failed", cause: PostgresFailure(error))
    } catch {
      try? await connection.close()
      throw error
    }
  }

  // MARK: - Schema

  func migrate(_ connection: PostgresConnection) async throws {
    try await self.run(DatastoreSchema.createVersionTable, connection)
    let rows = try await connection.query("SELECT max(version) FROM sds_agent_schema", logger: self.logger)
    var current: Int?
    for try await (version) in rows.decode((Int?).self) { current = version }
    switch DatastoreSchema.plan(current: current) {
    case .upToDate:
      return
    case .newer(let found, let known):
      throw DatastoreError(
        .newerSchema,
        "\(DatastoreAddress.setting) \(self.address) has schema version \(found); this sds-agent knows up to \(known)",
        remedy: "run the newer sds-agent, or restore a backup of this schema version")
    case .migrate(let versions):
      for migration in DatastoreSchema.migrations where versions.contains(migration.version) {
        for statement in migration.statements { try await self.run(statement, connection) }
        try await connection.query(
          "INSERT INTO sds_agent_schema (version, applied_by) VALUES (\(migration.version), \(self.replicaName))",
          logger: self.logger)
        self.logger.notice("datastore: schema migrated", metadata: ["version": "\(migration.version)"])
      }
    }
  }

  private func run(_ statement: String, _ connection: PostgresConnection) async throws {
    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: self.logger)
  }

  // MARK: - Key-encryption key

  func checkKeyEncryptionKey(_ connection: PostgresConnection) async throws {
    let rows = try await connection.query(
      "SELECT verifier FROM sds_agent_key_encryption WHERE id = 1", logger: self.logger)
    var stored: ByteBuffer?
    for try await (verifier) in rows.decode(ByteBuffer.self) { stored = verifier }
    guard let stored else {
      let verifier = ByteBuffer(bytes: try self.keyEncryptionKey.verifier())
      try await connection.query(
        "INSERT INTO sds_agent_key_encryption (id, verifier, created_by) VALUES (1, \(verifier), \(self.replicaName))",
        logger: self.logger)
      return
    }
    guard self.keyEncryptionKey.matches(verifier: Array(buffer: stored)) else {
      throw DatastoreError(
        .wrongKeyEncryptionKey,
        "\(KeyEncryptionKey.setting) is not the key that sealed the CA keys in \(self.address)",
        remedy: "give every replica the same key-encryption key file as the replica that created the datastore")
    }
  }

  // MARK: - Roots

  /// The roots and the rotation record as the datastore holds them; nil before the first root.
  package func state(_ connection: PostgresConnection) async throws -> SharedCAState? {
    let rows = try await connection.query(
      "SELECT serial, role, certificate_pem, chain_pem, key_sealed, imported FROM sds_agent_ca_roots",
      logger: self.logger)
    var byRole: [String: CAMaterial] = [:]
    var imported = false
    for try await (serial, role, certificatePEM, chainPEM, sealed, isImported) in rows.decode(
      (String, String, String, String, ByteBuffer?, Bool).self)
    {
      if role == "signing" { imported = isImported }
      byRole[role] = try self.material(
        serial: serial, certificatePEM: certificatePEM, chainPEM: chainPEM, sealed: sealed)
    }
    guard let signing = byRole["signing"] else { return nil }
    let records = try await connection.query(
      "SELECT record FROM sds_agent_root_rotation WHERE id = 1", logger: self.logger)
    var record: String?
    for try await (text) in records.decode(String.self) { record = text }
    let roots = EmbeddedCA.Roots(
      signing: signing, next: byRole["next"], previous: byRole["previous"]?.certificate,
      previousKey: byRole["previous"]?.privateKey)
    return SharedCAState(roots: roots, rotationRecord: record, imported: imported)
  }

  func material(serial: String, certificatePEM: String, chainPEM: String, sealed: ByteBuffer?) throws -> CAMaterial {
    do {
      let certificate = try Certificate(pemEncoded: certificatePEM)
      let chain = chainPEM.isEmpty ? [] : try PEMDocument.parseMultiple(pemString: chainPEM).map(Certificate.init)
      guard let sealed,
        let keyPEM = self.keyEncryptionKey.open(
          Array(buffer: sealed), context: KeyEncryptionKey.context(ofRootKey: try self.derBytes(certificate)))
      else {
        throw DatastoreError(
          .keyRowTampered,
          "the key of root \(BoundedText(serial)) in \(self.address) does not open for its certificate: the row was "
            + "altered or swapped", remedy: "restore the datastore from a backup")
      }
      let key = try Certificate.PrivateKey(pemEncoded: String(decoding: keyPEM, as: UTF8.self))
      return try CAMaterial(certificate: certificate, privateKey: key, chain: chain)
    } catch let error as DatastoreError {
      throw error
    } catch {
      throw DatastoreError(
        .query, "the root \(BoundedText(serial)) in \(self.address) cannot be read", cause: error)
    }
  }

  func insert(_ material: CAMaterial, role: String, imported: Bool, _ connection: PostgresConnection) async throws {
    try await connection.query(try self.insertion(material, role: role, imported: imported), logger: self.logger)
  }

  /// The row of `material` in `role`, its key sealed to its certificate.
  func insertion(_ material: CAMaterial, role: String, imported: Bool) throws -> PostgresQuery {
    let certificate = material.certificate
    let sealed = try self.keyEncryptionKey.seal(
      Array(try material.privateKey.serializeAsPEM().pemString.utf8),
      context: KeyEncryptionKey.context(ofRootKey: try self.derBytes(certificate)))
    let chain = try (material.intermediates + material.trustBundle.roots.filter { $0 != certificate })
      .map { try $0.pemString() }.joined(separator: "\n")
    return """
      INSERT INTO sds_agent_ca_roots (serial, role, certificate_pem, chain_pem, key_sealed, imported, created_by)
      VALUES (\(certificate.serialHex), \(role), \(try certificate.pemString()), \(chain), \(ByteBuffer(bytes: sealed)),
        \(imported), \(self.replicaName))
      """
  }

  private func derBytes(_ certificate: Certificate) throws -> [UInt8] {
    var serializer = DER.Serializer()
    try serializer.serialize(certificate)
    return serializer.serializedBytes
  }
}
