import Foundation
import SDSAgentCore
import X509

extension FuzzTarget {
  /// A trust bundle file (`BundleDocument(parsing:now:)`): PEM or a SPIFFE bundle document.
  /// An accepted document trusts only CA certificates that have not expired, each once, in the
  /// format its first byte names; a refusal says why in a bounded message that never echoes the
  /// file.
  static let bundleDocument = FuzzTarget(
    name: "bundle-document",
    summary: "BundleDocument(parsing:now:) on PEM and SPIFFE bundle documents"
  ) { data in
    // The seeds' roots are valid for a century from 2026; judge at a fixed time inside it.
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    let document: BundleDocument
    do throws(BundleDocumentError) {
      document = try BundleDocument(parsing: data, now: now)
    } catch {
      FuzzTarget.check(
        error.message.count <= 1024, "a \(error.message.count)-character error: \(error.message.prefix(200))")
      FuzzTarget.check(
        !error.message.unicodeScalars.contains { $0.value < 0x20 },
        "a control character in \(error.message.debugDescription)")
      return "refused: \(error.reason.rawValue)"
    }
    let roots = document.trustBundle.roots
    FuzzTarget.check(!roots.isEmpty, "a document accepted with no root")
    FuzzTarget.check(
      roots.allSatisfy {
        if case .isCertificateAuthority = (try? $0.extensions.basicConstraints) ?? .notCertificateAuthority {
          true
        } else {
          false
        }
      }, "a root that is not a CA")
    FuzzTarget.check(roots.allSatisfy { now <= $0.notValidAfter }, "an expired root kept")
    FuzzTarget.check(Set(roots).count == roots.count, "a root kept twice")
    FuzzTarget.check(document.skippedNotCA >= 0 && document.droppedExpired >= 0, "negative counts")
    let text = data.starts(with: [0xEF, 0xBB, 0xBF]) ? data.dropFirst(3) : data[...]
    let first = text.first { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }
    FuzzTarget.check(
      (document.format == .spiffeBundle) == (first == UInt8(ascii: "{")),
      "format \(document.format.rawValue) for a document starting with \(String(describing: first))")
    return
      "\(document.format.rawValue): \(roots.count) root(s), \(document.skippedNotCA) not CA, \(document.droppedExpired) expired"
  }
}
