import Foundation
import SDSAgentCore

/// What the datastore holds of the shared CA at one moment: its roots and the rotation in
/// progress, as the text every replica compares (`RootRotation` as `encoded`).
package struct SharedCAState: Sendable {
  package let roots: EmbeddedCA.Roots
  /// `sds_agent_root_rotation.record`; nil without a rotation.
  package let rotationRecord: String?
  /// The signing root came from the operator's files: it is not rotated.
  package let imported: Bool

  package init(roots: EmbeddedCA.Roots, rotationRecord: String?, imported: Bool = false) {
    self.roots = roots
    self.rotationRecord = rotationRecord
    self.imported = imported
  }

  /// The rotation in progress; a record this binary cannot read is an error naming the datastore.
  package func rotation() throws(DatastoreError) -> RootRotation? {
    guard let rotationRecord else { return nil }
    do {
      return try Self.decoder.decode(RootRotation.self, from: Data(rotationRecord.utf8))
    } catch {
      throw DatastoreError(
        .query, "the root rotation record in the datastore cannot be read", cause: error)
    }
  }

  /// The root serials by role, to tell whether the roots changed.
  var rootSerials: [String?] {
    [
      self.roots.signing.certificate.serialHex, self.roots.next?.certificate.serialHex,
      self.roots.previous?.serialHex,
    ]
  }

  /// `rotation` as the datastore keeps it: every replica encodes alike, so equal texts are equal records.
  package static func encoded(_ rotation: RootRotation) throws(DatastoreError) -> String {
    do {
      return String(decoding: try Self.encoder.encode(rotation), as: UTF8.self)
    } catch {
      throw DatastoreError(.query, "cannot encode the root rotation record", cause: error)
    }
  }

  private static var encoder: JSONEncoder {
    let encoder = JSONEncoder()
    encoder.dateEncodingStrategy = .millisecondsSince1970
    encoder.outputFormatting = [.sortedKeys]
    return encoder
  }

  private static var decoder: JSONDecoder {
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = .millisecondsSince1970
    return decoder
  }
}
