import Foundation
import GRPCCore

extension Metadata {
  /// The token of the first `authorization: Bearer <token>` value, if any.
  package var bearerToken: String? {
    for value in self[stringValues: "authorization"] {
      let parts = value.split(separator: " ", maxSplits: 1)
      if parts.count == 2, parts[0].lowercased() == "bearer" {
        let token = parts[1].trimmingCharacters(in: .whitespaces)
        if !token.isEmpty { return token }
      }
    }
    return nil
  }
}
