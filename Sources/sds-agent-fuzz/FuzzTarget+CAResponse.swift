import EnvoySDSProtos
import Foundation
import SDSAgentCore

extension FuzzTarget {
  /// A CA's answer (`IstioCertificateResponse.validatedSVID`) from arbitrary bytes: the input is
  /// split at NUL bytes into `cert_chain` strings, and after a double NUL into
  /// `root_cert.ca_cert` strings. A chain that validates holds our key and our identity.
  static let caResponse = FuzzTarget(
    name: "ca-response",
    summary: "IstioCertificateResponse.validatedSVID on arbitrary PEM strings"
  ) { data in
    let text = String(decoding: data, as: UTF8.self)
    let sections = text.components(separatedBy: "\0\0")
    var response = Istio_V1_Auth_IstioCertificateResponse()
    response.certChain = sections[0].components(separatedBy: "\0")
    if sections.count > 1 {
      response.rootCert.caCert = sections[1...].joined(separator: "\0").components(separatedBy: "\0")
    }
    let fixture = CAResponseFixture.shared
    let fixedResponse = response
    let result = runBlocking { () -> Result<IssuedSVID, CertificateAuthorityError> in
      do {
        return .success(
          try await fixedResponse.validatedSVID(
            identity: fixture.identity, privateKey: fixture.privateKey, now: fixture.now))
      } catch let error as CertificateAuthorityError {
        return .failure(error)
      } catch {
        fatalError("validatedSVID throws only CertificateAuthorityError: \(error)")
      }
    }
    let issued: IssuedSVID
    switch result {
    case .success(let svid): issued = svid
    case .failure(let error): return "refused: \(error.message)"
    }
    let key = issued.certifiedKey
    FuzzTarget.check(key.identity == fixture.identity, "an SVID for \(key.identity) was accepted")
    FuzzTarget.check(key.leaf.publicKey == fixture.privateKey.publicKey, "an SVID for another key was accepted")
    FuzzTarget.check(key.leaf.spiffeIDs == [fixture.identity], "the leaf names \(key.leaf.spiffeIDs)")
    FuzzTarget.check(key.isValid(at: fixture.now), "an SVID not valid now was accepted")
    FuzzTarget.check(!issued.trustBundle.roots.isEmpty, "an SVID was accepted without roots")
    return "accepted: \(key.chain.count) certificate(s), \(issued.trustBundle.roots.count) root(s)"
  }
}

/// The workload the fuzzed CA answers are for. The seed corpus (Tests/fuzz-corpus/ca-response)
/// holds chains certifying this key, issued by certs-testdata's intermediate CA.
struct CAResponseFixture: Sendable {
  static let shared = CAResponseFixture()

  let identity = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/fuzz/sa/fuzz")
  let privateKey = WorkloadPrivateKey(p256: FuzzKey.p256)
  /// Inside the seed leaf's validity (2026-11-30 to 2040-08-08), so the seeds validate.
  let now = Date(timeIntervalSince1970: 1_830_297_600)  // 2028-01-01
}
