import Crypto
import Foundation

/// The three session ticket keys one epoch serves, in the order Envoy takes them: the epoch's
/// own (Envoy encrypts new tickets with the first key), then the previous and the next epoch's
/// (only decrypted with). Every agent holding the same seed and period serves the same keys at
/// the same time, with no other coordination.
///
/// Each key is `HKDF-SHA256(ikm: seed, salt: empty, info: label ‖ epoch as 8 bytes big-endian,
/// length: 80)`; Envoy reads an 80-byte key as a 16-byte name, a 32-byte HMAC secret and a
/// 32-byte AES key.
package struct SessionTicketKeys: Sendable, Equatable {
  /// The epoch whose key comes first.
  package let epoch: Int64
  /// The current, previous and next epoch's keys, 80 bytes each.
  package let keys: [Data]

  package static let keyLength = 80
  /// The fixed part of HKDF's `info`.
  package static let label = Array("sds-agent session ticket key v1".utf8)

  package init(seed: SessionTicketSeed, epoch: Int64) {
    self.epoch = epoch
    self.keys = [epoch, epoch &- 1, epoch &+ 1].map { Self.key(seed: seed, epoch: $0) }
  }

  /// One epoch's key.
  package static func key(seed: SessionTicketSeed, epoch: Int64) -> Data {
    var info = Self.label
    withUnsafeBytes(of: UInt64(bitPattern: epoch).bigEndian) { info.append(contentsOf: $0) }
    let key = HKDF<SHA256>.deriveKey(
      inputKeyMaterial: seed.material, salt: [UInt8](), info: info, outputByteCount: Self.keyLength)
    return key.withUnsafeBytes { Data($0) }
  }

  /// The first 8 hex digits of the SHA-256 of the first key: shown in place of the keys, so two
  /// gateways can be compared without either revealing them.
  package var fingerprint: String {
    SHA256.hash(data: self.keys[0]).prefix(4).map { String(format: "%02x", $0) }.joined()
  }
}
