import Foundation
import SDSAgentCore
import SDSAgentTestSupport
import Testing

@testable import SDSAgent

/// `BundleFile.read`'s failures have the one error shape: a code from a closed set (the metric
/// label), a message, and the bundle document's own error as the cause.
@Suite struct BundleFileTests {
  let directory = TemporaryDirectory.make()

  func failure(_ contents: Data?) -> BundleFile.Failure? {
    let path = self.directory + "/bundle.pem"
    if let contents { #expect(FileManager.default.createFile(atPath: path, contents: contents)) }
    guard case .failure(let failure) = BundleFile.read(path, now: Date()) else { return nil }
    return failure
  }

  @Test func aMissingFileIsMissing() {
    let failure = self.failure(nil)
    #expect(failure?.code == .missing)
    #expect(failure?.reason == "missing")
    #expect(failure?.cause == nil)
  }

  @Test func aFileThatIsNoBundleKeepsTheDocumentErrorAsItsCause() {
    let failure = self.failure(Data("not a bundle\n".utf8))
    #expect(failure?.code == .document(.unparsable))
    #expect(failure?.reason == "unparsable")
    #expect((failure?.cause as? BundleDocumentError)?.reason == .unparsable)
  }

  @Test func aFileTooLargeIsNotRead() {
    let failure = self.failure(Data(repeating: 0x41, count: BundleDocument.maximumSize + 1))
    #expect(failure?.code == .document(.tooLarge))
    #expect(BundleFile.Failure.Code(rawValue: "too_large") == .document(.tooLarge))
  }

  @Test func aValidBundleIsRead() throws {
    let root = try CAMaterial.generateRoot(trustDomain: "example.org", now: Date(), commonName: "root")
    #expect(self.failure(Data(try root.certificate.serializeAsPEM().pemString.utf8)) == nil)
  }
}
