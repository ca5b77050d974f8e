import Foundation

/// One answer of the admin endpoint.
package struct AdminResponse: Sendable {
  package var status: Int
  package var contentType: String
  package var body: String

  static func text(_ status: Int, _ body: String) -> Self {
    Self(status: status, contentType: "text/plain", body: body)
  }

  static func json(_ object: Any, status: Int = 200) -> Self {
    let data = (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])) ?? Data()
    return Self(status: status, contentType: "application/json", body: String(decoding: data, as: UTF8.self) + "\n")
  }
}
