import Foundation
import GRPCCore

/// What is known about the caller of one RPC: the transport's peer credentials and the token
/// its Envoy forwarded, if any.
package struct CallerEvidence: ServerContext.TransportSpecific, Sendable, Equatable {
  package var peer: PeerCredentials?
  package var token: String?

  package init(peer: PeerCredentials?, token: String?) {
    self.peer = peer
    self.token = token
  }

  /// The metadata keys a forwarded token arrives under: Istio's header (binary, so base64 on the
  /// wire), Istio 1.1's misspelling of it, and `authorization: Bearer`.
  package static let tokenKeys = ["istio_sds_credentials_header-bin", "istio_sds_credentail_header-bin"]

  package init(metadata: Metadata) {
    self.peer = metadata[stringValues: PeerCredentials.carrierKey].first(where: { _ in true }).flatMap(
      PeerCredentials.init(carrierValue:))
    self.token = Self.token(in: metadata)
  }

  static func token(in metadata: Metadata) -> String? {
    for key in Self.tokenKeys {
      for bytes in metadata[binaryValues: key] {
        let token = String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if !token.isEmpty { return token }
      }
    }
    return metadata.bearerToken
  }
}

extension CallerEvidence {
  /// Who the caller seems to be, for a log line about a caller not identified yet: its peer
  /// credentials and the subject its token claims (unverified, truncated), never the token.
  package var summary: String {
    var parts: [String] = []
    if let peer = self.peer { parts.append(peer.description) }
    if let token = self.token {
      let subject = (try? UnverifiedJWT(token))?.subject.map { String($0.prefix(Self.subjectLimit)) }
      parts.append("token subject=\(subject ?? "unreadable")")
    }
    return parts.isEmpty ? "no peer credentials or token" : parts.joined(separator: " ")
  }

  /// The longest part of a token's subject a log line shows.
  static let subjectLimit = 128
}
