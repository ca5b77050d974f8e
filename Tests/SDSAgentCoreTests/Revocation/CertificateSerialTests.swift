import SDSAgentCore
import Testing
import X509

@Suite struct CertificateSerialTests {
  @Test(arguments: ["0A1b", "0a1b", "000a1b", "serial=0A1B", "0x0a1b", "0a:1b", "A1B"])
  func hexIsReadAsANumber(text: String) throws {
    #expect(CertificateSerial(hex: text)?.description == "0a1b")
  }

  @Test(arguments: ["", "0x", "xyz", "12 34", "-1", String(repeating: "ff", count: 21), "serial=", "1_2"])
  func whatIsNotASerialIsRefused(text: String) {
    #expect(CertificateSerial(hex: text) == nil)
  }

  @Test func aCertificateSerialEqualsItsPrintedHex() throws {
    let serial = Certificate.SerialNumber(bytes: [0x00, 0x9f, 0x01])
    #expect(CertificateSerial(serial) == CertificateSerial(hex: "9F01"))
    #expect(CertificateSerial(hex: "00")?.description == "00")
  }

  @Test func serialsCompareAsNumbers() throws {
    let small = try #require(CertificateSerial(hex: "ff"))
    let large = try #require(CertificateSerial(hex: "0100"))
    #expect(small < large)
    #expect(!(large < small))
  }

  @Test(arguments: ["key-compromise", "keyCompromise", "KEY_COMPROMISE"])
  func reasonsAreReadInEitherSpelling(name: String) {
    #expect(RevocationReason(name: name) == .keyCompromise)
  }

  @Test func anUnknownReasonIsRefused() {
    #expect(RevocationReason(name: "certificateHold") == nil)
    #expect(RevocationReason(name: "") == nil)
  }
}
