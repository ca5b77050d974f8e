import Foundation
import SDSAgentCore

/// The body of `POST /ca/revoke`: `{"serial": "HEX", "reason": "…"}` or
/// `{"identity": "spiffe://…", "reason": "…"}`; `sds-agent ca revoke` sends it, the admin route
/// reads it. Decoding checks everything, so a request that decodes can be carried out.
package struct RevokeRequest: Sendable, Equatable, Codable {
  package static let maximumBodyLength = 4096

  package let target: Revocations.Request
  package let reason: RevocationReason

  package init(target: Revocations.Request, reason: RevocationReason = .unspecified) {
    self.target = target
    self.reason = reason
  }

  private enum CodingKeys: String, CodingKey, CaseIterable {
    case serial, identity, reason
  }

  /// Reads a request body, or says what is wrong with it (for a 400 answer).
  package static func decode(_ body: [UInt8]) throws(RevokeRequestError) -> RevokeRequest {
    guard body.count <= Self.maximumBodyLength else {
      throw RevokeRequestError("the body is \(body.count) bytes; at most \(Self.maximumBodyLength)")
    }
    do {
      return try JSONDecoder().decode(RevokeRequest.self, from: Data(body))
    } catch let error as RevokeRequestError {
      throw error
    } catch DecodingError.typeMismatch(_, let context) where !context.codingPath.isEmpty {
      throw RevokeRequestError(
        #"the body is not a revocation request: send {"serial": "HEX"} or {"identity": "spiffe://…"}"#)
    } catch {
      throw RevokeRequestError(#"the body is not a JSON object: send {"serial": "HEX"} or {"identity": "spiffe://…"}"#)
    }
  }

  private struct AnyKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
  }

  package init(from decoder: any Decoder) throws {
    let known = Set(CodingKeys.allCases.map(\.rawValue))
    if let unknown = try decoder.container(keyedBy: AnyKey.self).allKeys.map(\.stringValue).sorted()
      .first(where: { !known.contains($0) })
    {
      throw RevokeRequestError(
        "unknown key \"\(BoundedText(unknown, limit: 64))\": the keys are serial, identity and reason")
    }
    let container = try decoder.container(keyedBy: CodingKeys.self)
    let serial = try container.decodeIfPresent(String.self, forKey: .serial)
    let identity = try container.decodeIfPresent(String.self, forKey: .identity)
    switch (serial, identity) {
    case (let serial?, nil):
      guard let parsed = CertificateSerial(hex: serial) else {
        throw RevokeRequestError(
          "serial \"\(BoundedText(serial, limit: 64))\" is not a serial number: hex digits as openssl x509 -serial prints them, at most 20 octets"
        )
      }
      self.target = .serial(parsed)
    case (nil, let identity?):
      do {
        self.target = .identity(try SPIFFEID(parsing: identity))
      } catch {
        throw RevokeRequestError("identity", cause: error)
      }
    default:
      throw RevokeRequestError("name exactly one of serial and identity")
    }
    let reason = try container.decodeIfPresent(String.self, forKey: .reason)
    guard let reasonName = reason else {
      self.reason = .unspecified
      return
    }
    guard let parsed = RevocationReason(name: reasonName) else {
      throw RevokeRequestError(
        "reason \"\(BoundedText(reasonName, limit: 64))\" is not one of \(RevocationReason.allCases.map(\.rawValue).joined(separator: ", "))"
      )
    }
    self.reason = parsed
  }

  package func encode(to encoder: any Encoder) throws {
    var container = encoder.container(keyedBy: CodingKeys.self)
    switch self.target {
    case .serial(let serial): try container.encode(serial.description, forKey: .serial)
    case .identity(let identity): try container.encode(identity.description, forKey: .identity)
    }
    try container.encode(self.reason.rawValue, forKey: .reason)
  }
}

/// Why a revocation request cannot be carried out as sent.
package struct RevokeRequestError: AgentFailure, Equatable {
  package enum Code: String, Sendable {
    case invalidRequest = "invalid_request"
  }

  package var code: Code { .invalidRequest }
  package let message: String
  package let cause: (any Error)?

  init(_ message: String, cause: (any Error)? = nil) {
    self.message = message
    self.cause = cause
  }

  package var description: String { self.failureText }

  /// Two errors are the same when they say the same.
  package static func == (lhs: Self, rhs: Self) -> Bool {
    lhs.description == rhs.description
  }
}
