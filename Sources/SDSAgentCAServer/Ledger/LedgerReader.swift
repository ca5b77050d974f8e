import Foundation
import Logging
import PostgresNIO
import SDSAgentCore

/// Reads the issuance ledger for `ca ledger`, over one connection of its own.
package struct LedgerReader: Sendable {
  package let address: DatastoreAddress
  package let logger: Logger

  package init(address: DatastoreAddress, logger: Logger) {
    self.address = address
    self.logger = logger
  }

  package func rows(identity: String?, since: Date?) async throws -> [LedgerEntry] {
    let connection = try await PostgresConnection.connect(
      configuration: try self.address.configuration(), id: 1, logger: self.logger)
    do {
      let rows = try await LedgerRows.list(connection, identity: identity, since: since, logger: self.logger)
      try? await connection.close()
      return rows
    } catch {
      try? await connection.close()
      throw error
    }
  }
}
