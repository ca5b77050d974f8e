import Foundation
import SDSAgentCore

/// `<state-dir>/ca-cert.pem` of a replica on a datastore: the trust bundle of the moment, for
/// agents' `--ca-root`. It holds no key; the directory is made 0700 like the state directory.
enum TrustBundleFile {
  static let fileName = "ca-cert.pem"

  static func write(_ bundle: TrustBundle, stateDirectory: String) throws {
    let manager = FileManager.default
    if !manager.fileExists(atPath: stateDirectory) {
      try manager.createDirectory(
        atPath: stateDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }
    let path = (stateDirectory as NSString).appendingPathComponent(self.fileName)
    try Data(try bundle.pemString().utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    try manager.setAttributes([.posixPermissions: 0o644], ofItemAtPath: path)
  }
}
