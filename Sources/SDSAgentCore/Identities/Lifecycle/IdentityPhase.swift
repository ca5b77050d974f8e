import Foundation

/// Where an identity is in its certificate lifecycle.
///
/// ```
///            issued                    renewal due
/// issuing ─────────▶ serving ───────────────────▶ renewing ──issued──▶ serving
///    │                  ▲  │ notAfter passed          │
///    │ failed           │  ▼                          │ failed
///    └──────▶ failing ──┘ expired ◀──notAfter passed──┘ (failing keeps the valid certificate)
/// ```
package enum IdentityPhase: Sendable, Equatable, CustomStringConvertible {
  /// No certificate yet; the first issuance is in flight.
  case issuing
  /// A valid certificate is served; its renewal is scheduled.
  case serving
  /// A valid certificate is served while its successor is being issued.
  case renewing
  /// The last issuance failed; a valid certificate, if there is one, is still served.
  case failing(IssuanceFailure)
  /// The certificate expired before it could be renewed and is no longer served.
  case expired

  package var name: String {
    switch self {
    case .issuing: return "issuing"
    case .serving: return "serving"
    case .renewing: return "renewing"
    case .failing: return "failing"
    case .expired: return "expired"
    }
  }

  package var description: String {
    if case .failing(let failure) = self { return "failing (\(failure.code.rawValue): \(failure.message))" }
    return self.name
  }
}

/// The last failed issuance of an identity: what the CA said and when.
package struct IssuanceFailure: Sendable, Equatable {
  package let code: CertificateAuthorityError.Code
  package let message: String
  package let at: Date

  package init(_ error: CertificateAuthorityError, at date: Date) {
    self.code = error.code
    self.message = error.message
    self.at = date
  }
}
