import Foundation

/// One answer of the admin endpoint.
package struct AdminResponse: Sendable {
  package var status: Int
  package var contentType: String
  package var body: String

  package static func text(_ status: Int, _ body: String) -> Self {
    Self(status: status, contentType: "text/plain", body: body)
  }

  /// A document of `AdminAPI` (or `NodeStatus` with its own encoder), on a line of its own.
  package static func json(_ document: some Encodable, status: Int = 200, encoder: JSONEncoder = AdminAPI.encoder)
    -> Self
  {
    let data = (try? encoder.encode(document)) ?? Data()
    return Self(status: status, contentType: "application/json", body: String(decoding: data, as: UTF8.self) + "\n")
  }
}
