import EnvoySDSProtos
import Foundation
import GRPCCore
import GRPCInProcessTransport
import Logging
import SDSAgentCore
import Synchronization
import Testing

/// The signer asks admission control when a call starts and once its caller is known, and
/// answers a refusal with `UNAVAILABLE` and gRPC's `grpc-retry-pushback-ms` trailer.
@Suite struct IstioCertificateSignerAdmissionTests {
  final class Gate: SigningAdmission {
    let refusal: AdmissionRefusal?
    let asked = Mutex<[SPIFFEID]>([])
    let ended = Mutex(0)

    init(refusal: AdmissionRefusal?) { self.refusal = refusal }

    func start() -> AdmissionDecision {
      guard let refusal, refusal.reason == .inFlight else { return .admitted }
      return .refused(refusal)
    }

    func charge(caller: SPIFFEID) -> AdmissionDecision {
      self.asked.withLock { $0.append(caller) }
      guard let refusal, refusal.reason == .callerRate else { return .admitted }
      return .refused(refusal)
    }

    func finished() { self.ended.withLock { $0 += 1 } }
  }

  func call(through gate: Gate) async throws -> Result<Istio_V1_Auth_IstioCertificateResponse, RPCError> {
    let signer = IstioCertificateSigner(
      ca: EmbeddedCA(EmbeddedCA.Roots(signing: Fixtures.material)),
      authenticator: IstioCertificateSignerTests.TokenTable(), maximumTTL: .seconds(3600),
      logger: Logger(label: "test"), now: { Fixtures.now }, admission: gate)
    let key = try WorkloadKeyType.ecdsaP256.generate()
    var request = Istio_V1_Auth_IstioCertificateRequest()
    request.csr = try WorkloadCSR.make(identity: Fixtures.identity, privateKey: key).serializeAsPEM().pemString
    let transport = InProcessTransport()
    return try await withGRPCServer(transport: transport.server, services: [signer]) { _ in
      try await withGRPCClient(transport: transport.client) { client in
        do {
          return .success(
            try await Istio_V1_Auth_IstioCertificateService.Client(wrapping: client).createCertificate(
              request, metadata: ["authorization": "Bearer good"]))
        } catch let error as RPCError {
          return .failure(error)
        }
      }
    }
  }

  @Test func anAdmittedSigningEndsItsAdmission() async throws {
    let gate = Gate(refusal: nil)
    let result = try await self.call(through: gate)
    #expect((try? result.get())?.certChain.isEmpty == false)
    #expect(gate.asked.withLock { $0 } == [Fixtures.identity])
    #expect(gate.ended.withLock { $0 } == 1)
  }

  @Test(arguments: AdmissionRefusal.Reason.allCases)
  func aRefusalIsUnavailableWithARetryHint(reason: AdmissionRefusal.Reason) async throws {
    let gate = Gate(refusal: AdmissionRefusal(reason, retryAfter: .milliseconds(1500)))
    guard case .failure(let error) = try await self.call(through: gate) else {
      Issue.record("a refused signing was answered")
      return
    }
    #expect(error.code == .unavailable)
    #expect(Array(error.metadata[stringValues: "grpc-retry-pushback-ms"]) == ["1500"])
    #expect(error.message.contains("retry after grpc-retry-pushback-ms"))
    // Refused at its start, a call neither reaches the caller's rate nor ends an admission.
    let started = reason == .callerRate
    #expect(gate.asked.withLock { $0.count } == (started ? 1 : 0))
    #expect(gate.ended.withLock { $0 } == (started ? 1 : 0))
  }
}
