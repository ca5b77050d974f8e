import Foundation

/// The admin endpoint's JSON documents, one type per answer, shared by the routes that encode
/// them and the clients that read them (`AdminClient`, `sds-agent status`, the drills):
///
/// | route | document |
/// | --- | --- |
/// | `GET /debug/streams` | `[AdminAPI.Stream]` |
/// | `GET /debug/secrets` | `[AdminAPI.Secret]` |
/// | `GET /debug/trust`, `POST /ca/rotate-root` (202) | `AdminAPI.Trust` |
/// | `POST /rotate` | `AdminAPI.Rotated` |
/// | `POST /ca/revoke` | `AdminAPI.Revoked` (`GET /ca/crl` is PEM) |
/// | `GET /status` | `NodeStatus` (its own coder) |
///
/// Keys are snake_case and sorted, times ISO 8601 in whole seconds; a field documented as
/// `null` when unknown is always present. Errors are `text/plain`, never a document.
package enum AdminAPI {
  /// How the routes write a document: pretty-printed, keys sorted.
  package static var encoder: JSONEncoder {
    let encoder = JSONEncoder()
    encoder.dateEncodingStrategy = .iso8601
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return encoder
  }

  /// How clients read a document.
  package static var decoder: JSONDecoder {
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = .iso8601
    return decoder
  }

  /// `POST /rotate`: the identity rotated and the serial of its new certificate.
  package struct Rotated: Codable, Sendable, Equatable {
    package var identity: String
    package var serial: String
  }

  /// A root as `/debug/secrets` and a federated domain of `/debug/trust` list it.
  package struct Root: Codable, Sendable, Equatable {
    package var subject: String
    package var serial: String
    package var notAfter: Date

    enum CodingKeys: String, CodingKey {
      case subject, serial
      case notAfter = "not_after"
    }
  }
}
