import Foundation
import SDSAgentCore

extension AdminClient.Response {
  /// The body read as the admin endpoint's document `type` (see `AdminAPI`), or why it is not one.
  package func decode<Document: Decodable>(
    _ type: Document.Type, decoder: JSONDecoder = AdminAPI.decoder
  ) throws(AgentError) -> Document {
    do {
      return try decoder.decode(type, from: Data(self.body.utf8))
    } catch {
      throw AgentError(
        .connection,
        "the admin endpoint's answer (\(self.status)) is not \(type): \(BoundedText(self.body, limit: 512))",
        cause: error)
    }
  }
}
