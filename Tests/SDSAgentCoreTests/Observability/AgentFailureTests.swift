import Foundation
import SDSAgentCore
import Testing

/// The one error shape: a wrapped error stays a value (`cause`) while the message reads as it
/// always did, "message: cause; remedy".
@Suite struct AgentFailureTests {
  @Test func aParseErrorKeepsWhatCausedIt() {
    #expect {
      _ = try CertificateRevocationList(pemEncoded: "not pem")
    } throws: { error in
      guard let failure = error as? CRLError else { return false }
      return failure.code == .unparsable && failure.cause != nil && failure.message == "not a PEM document"
        && failure.description == "not a PEM document: \(failure.cause!)"
    }
  }

  @Test func theTextIsTheMessageThenTheCauseThenTheRemedy() {
    let disk = RootRotationError(.storage, "disk full")
    let failure = RootRotationError(.storage, "the rotation's record could not be kept", cause: disk)
    #expect(failure.description == "the rotation's record could not be kept: disk full")
    #expect(failure.causes.map { "\($0)" } == ["disk full"])
    let authority = CertificateAuthorityError(.unavailable, "cannot reach the CA at ca:15012", cause: failure)
    #expect(authority.causes.count == 2 && (authority.causes.last as? RootRotationError)?.message == "disk full")
  }

  @Test func aWrappedConfigurationErrorSaysTheSameAndEqualsOneWithoutItsCause() throws {
    let cause = try #require(Self.spiffeIDError("http://cluster.local/x"))
    let wrapped = ConfigurationError(key: "workload", value: "x", allowed: "a SPIFFE ID", cause: cause)
    let plain = ConfigurationError(key: "workload", value: "x", allowed: "a SPIFFE ID")
    #expect(wrapped == plain && wrapped.description == plain.description)
    #expect(wrapped.description == #"invalid workload "x": expected a SPIFFE ID"#)
    #expect(wrapped.code == .invalidValue && wrapped.remedy == "expected a SPIFFE ID")
    #expect(wrapped.cause is SPIFFEIDError && wrapped.renamed("identity").cause is SPIFFEIDError)
  }

  static func spiffeIDError(_ text: String) -> SPIFFEIDError? {
    do throws(SPIFFEIDError) {
      _ = try SPIFFEID(parsing: text)
      return nil
    } catch {
      return error
    }
  }
}
