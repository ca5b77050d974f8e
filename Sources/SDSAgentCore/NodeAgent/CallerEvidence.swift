import Foundation
import GRPCCore

/// What is known about the caller of one RPC: the transport's peer credentials and the token
/// its Envoy forwarded, if any.
public struct CallerEvidence: ServerContext.TransportSpecific, Sendable, Equatable {
  public var peer: PeerCredentials?
  public var token: String?

  public init(peer: PeerCredentials?, token: String?) {
    self.peer = peer
    self.token = token
  }

  /// The metadata keys a forwarded token arrives under: Istio's header (binary, so base64 on the
  /// wire), Istio 1.1's misspelling of it, and `authorization: Bearer`.
  public static let tokenKeys = ["istio_sds_credentials_header-bin", "istio_sds_credentail_header-bin"]

  public init(metadata: Metadata) {
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
