import EnvoySDSProtos
import Foundation

/// Generic secrets (`generic_secret`): a filter's token, HMAC key or password, served as the file
/// holds it. Envoy drops trailing line breaks itself.
extension FileSecretContent {
  /// One value read from a file: `key` for a multi-key secret, `shown` naming the file in errors.
  package struct GenericValue: Sendable {
    package let key: String?
    package let value: Data
    package let shown: String

    package init(key: String?, value: Data, shown: String) {
      self.key = key
      self.value = value
      self.shown = shown
    }
  }

  /// A generic secret from one value (`key` nil) or from one value per key (Envoy's
  /// `GenericSecret.secrets`). A value that is empty once trailing line breaks are dropped is
  /// refused, so that the last good secret stays: Envoy refuses every request with an empty one.
  package static func generic(_ values: [GenericValue]) throws(FileSecretError) -> FileSecretContent {
    for value in values where Self.isBlank(value.value) {
      throw FileSecretError(.empty, "\(value.shown) is empty; Envoy would refuse every request with an empty secret")
    }
    var message = Envoy_Extensions_TransportSockets_Tls_V3_GenericSecret()
    if values.count == 1, values[0].key == nil {
      message.secret.inlineBytes = values[0].value
    } else {
      for value in values {
        var source = Envoy_Config_Core_V3_DataSource()
        source.inlineBytes = value.value
        message.secrets[value.key ?? ""] = source
      }
    }
    let digest = Self.digest(values.flatMap { [Data(($0.key ?? "").utf8), $0.value] })
    return FileSecretContent(
      kind: .genericSecret, serial: Self.fingerprint(digest), notAfter: .distantFuture, digest: digest,
      tlsCertificate: nil, validationContext: nil, genericSecret: message)
  }

  /// What logs show of a generic secret: the first 8 bytes of the SHA-256 of its keys and values.
  static func fingerprint(_ digest: Data) -> String {
    "sha256:" + digest.prefix(8).map { String(format: "%02x", $0) }.joined()
  }

  /// Empty once trailing line breaks are dropped, as Envoy drops them (`"\n\n"` is refused by
  /// Envoy 1.40's credential injector like `""`).
  private static func isBlank(_ value: Data) -> Bool {
    value.allSatisfy { $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\r") }
  }
}
