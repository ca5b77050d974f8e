import PostgresNIO
import SDSAgentCore

/// What a PostgresNIO error says that may be shown: its code, the server's message and SQLSTATE,
/// and the network error underneath; never the query or its values.
struct PostgresFailure: Error, CustomStringConvertible {
  let description: String

  init(_ error: any Error) {
    if let error = error as? PostgresTransactionError {
      let inner = error.closureError ?? error.commitError ?? error.beginError ?? error.rollbackError
      self.description = inner.map { PostgresFailure($0).description } ?? "the transaction failed"
      return
    }
    guard let error = error as? PSQLError else {
      self.description = BoundedText(String(describing: error)).description
      return
    }
    var parts = ["\(error.code)"]
    if let message = error.serverInfo?[.message] { parts.append(message) }
    if let state = error.serverInfo?[.sqlState] { parts.append("SQLSTATE \(state)") }
    if let underlying = error.underlying { parts.append(String(describing: underlying)) }
    self.description = BoundedText(parts.joined(separator: ": ")).description
  }
}
