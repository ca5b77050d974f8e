import Crypto
import Foundation

/// The one key of the fuzz targets, for fuzzing only: the seed corpus has certificates
/// (ca-response) and tokens (jwt) made for it, so seeds reach the code past signature checks.
/// It lives in certs-testdata/fuzz-key.pem, read from the source tree.
enum FuzzKey {
  static let p256: P256.Signing.PrivateKey = {
    let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("../../certs-testdata/fuzz-key.pem").standardized.path
    guard let pem = FileManager.default.contents(atPath: path) else {
      fatalError("the fuzz key \(path) is missing: the fuzz targets run from the source tree")
    }
    return try! P256.Signing.PrivateKey(pemRepresentation: String(decoding: pem, as: UTF8.self))
  }()
}
