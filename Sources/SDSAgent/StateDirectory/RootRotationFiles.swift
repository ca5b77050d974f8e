import Foundation
import SDSAgentCore
import X509

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// The embedded CA's roots and its rotation in the state directory:
///
/// - `ca-cert.pem`, `ca-key.pem`: the root that signs;
/// - `ca-next-cert.pem`, `ca-next-key.pem`: a prepared root (phase *prepared*);
/// - `ca-previous-cert.pem`, `ca-previous-key.pem`: the root that signed before the switch (phase
///   *switched*), its key kept so that it signs its revocation list until it retires;
/// - `root-rotation.json`: the phase and its deadlines; written last, so it is the record of a phase.
package struct RootRotationFiles: RootRotationStore {
  package static let nextCertificateFileName = "ca-next-cert.pem"
  package static let nextKeyFileName = "ca-next-key.pem"
  package static let previousCertificateFileName = "ca-previous-cert.pem"
  package static let previousKeyFileName = "ca-previous-key.pem"
  package static let rotationFileName = "root-rotation.json"

  package let stateDirectory: String

  package init(stateDirectory: String) {
    self.stateDirectory = stateDirectory
  }

  func path(_ name: String) -> String {
    (self.stateDirectory as NSString).appendingPathComponent(name)
  }

  var certificatePath: String { self.path(CAStore.certificateFileName) }
  var keyPath: String { self.path(CAStore.keyFileName) }
  var nextCertificatePath: String { self.path(Self.nextCertificateFileName) }
  var nextKeyPath: String { self.path(Self.nextKeyFileName) }
  var previousCertificatePath: String { self.path(Self.previousCertificateFileName) }
  var previousKeyPath: String { self.path(Self.previousKeyFileName) }
  var rotationPath: String { self.path(Self.rotationFileName) }

  // MARK: - RootRotationStore

  package func prepared(_ rotation: RootRotation, next: CAMaterial) throws(RootRotationError) {
    try self.storing {
      // Key first: a certificate without its key would make the next start fail.
      try SecureFile.write(try next.privateKey.serializeAsPEM().pemString + "\n", to: self.nextKeyPath, mode: 0o600)
      try SecureFile.write(try next.certificate.pemString() + "\n", to: self.nextCertificatePath, mode: 0o644)
      try self.write(rotation)
    }
  }

  package func switched(_ rotation: RootRotation, from previous: CAMaterial) throws(RootRotationError) {
    try self.storing {
      try SecureFile.write(
        try previous.privateKey.serializeAsPEM().pemString + "\n", to: self.previousKeyPath, mode: 0o600)
      try SecureFile.write(
        try previous.certificate.pemString() + "\n", to: self.previousCertificatePath, mode: 0o644)
      try self.write(rotation)
      try self.promoteNextRoot()
    }
  }

  package func retired() throws(RootRotationError) {
    try self.storing {
      try self.remove(self.rotationPath)
      try self.remove(self.previousCertificatePath)
      try self.remove(self.previousKeyPath)
    }
  }

  // MARK: - Loading

  /// The embedded CA's roots for `source`: the operator's files (not rotatable: no rotation, no
  /// store), or the generated CA of the state directory with the rotation in progress.
  package static func roots(
    of source: AgentConfiguration.CASource, stateDirectory: String, trustDomain: String, now: Date = Date()
  ) throws -> (roots: EmbeddedCA.Roots, rotation: RootRotation?, store: RootRotationFiles?) {
    switch source {
    case .files:
      let signing = try CAStore.load(source, stateDirectory: stateDirectory, trustDomain: trustDomain)
      return (EmbeddedCA.Roots(signing: signing), nil, nil)
    case .generated:
      let files = RootRotationFiles(stateDirectory: stateDirectory)
      let (roots, rotation) = try files.load(trustDomain: trustDomain, now: now)
      return (roots, rotation, files)
    }
  }

  /// The roots and the rotation in progress as the state directory holds them; generates the
  /// first root if there is none. A rotation record that is corrupt, or names a root whose files
  /// are missing, is an error naming the file: a root is never made silently in its place.
  package func load(trustDomain: String, now: Date) throws -> (EmbeddedCA.Roots, RootRotation?) {
    try SecureFile.ensurePrivateDirectory(self.stateDirectory)
    guard let rotation = try self.readRotation() else {
      // Files of a prepare that was never recorded: that rotation never started.
      try self.remove(self.nextKeyPath)
      try self.remove(self.nextCertificatePath)
      let signing = try CAStore.loadOrGenerate(stateDirectory: self.stateDirectory, trustDomain: trustDomain, now: now)
      return (EmbeddedCA.Roots(signing: signing), nil)
    }
    switch rotation.phase {
    case .prepared:
      let signing = try self.loadRoot(certificate: self.certificatePath, key: self.keyPath)
      let next = try self.loadRoot(certificate: self.nextCertificatePath, key: self.nextKeyPath)
      try self.check(signing, is: rotation.previousRootSerial, "signing")
      try self.check(next, is: rotation.nextRootSerial, "prepared")
      return (EmbeddedCA.Roots(signing: signing, next: next), rotation)
    case .switched:
      // A switch interrupted between its record and the renames is finished here.
      try self.promoteNextRoot()
      let signing = try self.loadRoot(certificate: self.certificatePath, key: self.keyPath)
      try self.check(signing, is: rotation.nextRootSerial, "signing")
      let previous = try self.loadCertificate(self.previousCertificatePath)
      // A switch recorded before the key was kept has none: that rotation serves no CRL.
      let previousKey = try self.loadKey(self.previousKeyPath, of: previous)
      return (EmbeddedCA.Roots(signing: signing, previous: previous, previousKey: previousKey), rotation)
    }
  }

  private func readRotation() throws(AgentError) -> RootRotation? {
    guard SecureFile.exists(self.rotationPath) else { return nil }
    let text = try SecureFile.read(self.rotationPath, isPrivate: false, what: "root rotation record")
    do {
      return try Self.decoder.decode(RootRotation.self, from: Data(text.utf8))
    } catch {
      throw AgentError(
        .stateDirectory,
        "the root rotation record \(self.rotationPath) is corrupt (\(BoundedText(String(describing: error)))); "
          + "restore it from a backup, or remove it with \(Self.nextCertificateFileName) and \(Self.nextKeyFileName) "
          + "to abandon the rotation")
    }
  }

  private func loadRoot(certificate: String, key: String) throws -> CAMaterial {
    for path in [certificate, key] where !SecureFile.exists(path) {
      throw AgentError(
        .stateDirectory,
        "\(path) is missing, but the root rotation record \(self.rotationPath) needs it; restore it from a backup")
    }
    return try CAStore.loadOperatorFiles(certificate: certificate, key: key, chain: nil)
  }

  private func loadCertificate(_ path: String) throws(AgentError) -> Certificate {
    guard SecureFile.exists(path) else {
      throw AgentError(
        .stateDirectory,
        "\(path) is missing, but the root rotation record \(self.rotationPath) needs it; restore it from a backup")
    }
    let text = try SecureFile.read(path, isPrivate: false, what: "previous root")
    do {
      return try Certificate(pemEncoded: text)
    } catch {
      throw AgentError(.stateDirectory, "cannot parse the previous root \(path)", cause: error)
    }
  }

  /// The previous root's key, if it was kept (it matches the previous root), or nil.
  private func loadKey(_ path: String, of previous: Certificate) throws -> Certificate.PrivateKey? {
    guard SecureFile.exists(path) else { return nil }
    let material = try CAStore.loadOperatorFiles(certificate: self.previousCertificatePath, key: path, chain: nil)
    guard material.certificate == previous else { return nil }
    return material.privateKey
  }

  private func check(_ material: CAMaterial, is serial: String, _ role: String) throws(AgentError) {
    guard material.certificate.serialHex == serial else {
      throw AgentError(
        .stateDirectory,
        "the \(role) root has serial \(material.certificate.serialHex), but the root rotation record "
          + "\(self.rotationPath) names \(serial); restore the files that belong together")
    }
  }

  // MARK: - Files

  private func write(_ rotation: RootRotation) throws(AgentError) {
    let data: Data
    do {
      data = try Self.encoder.encode(rotation)
    } catch {
      throw AgentError(.stateDirectory, "cannot encode the root rotation record", cause: error)
    }
    try SecureFile.write(String(decoding: data, as: UTF8.self) + "\n", to: self.rotationPath, mode: 0o644)
  }

  /// Moves the prepared root's files over the signing root's, key first; each step is atomic and
  /// repeating it after an interruption finishes the move.
  private func promoteNextRoot() throws(AgentError) {
    for (from, to) in [(self.nextKeyPath, self.keyPath), (self.nextCertificatePath, self.certificatePath)]
    where SecureFile.exists(from) {
      guard rename(from, to) == 0 else {
        throw AgentError(.stateDirectory, "cannot rename \(from) to \(to): \(Errno.current)")
      }
    }
  }

  private func remove(_ path: String) throws(AgentError) {
    guard unlink(path) == 0 || errno == ENOENT else {
      throw AgentError(.stateDirectory, "cannot remove \(path): \(Errno.current)")
    }
  }

  private func storing(_ body: () throws -> Void) throws(RootRotationError) {
    do {
      try body()
    } catch {
      throw RootRotationError(.storage, "the rotation's record could not be kept", cause: error)
    }
  }

  private static var encoder: JSONEncoder {
    let encoder = JSONEncoder()
    encoder.dateEncodingStrategy = .iso8601
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return encoder
  }

  private static var decoder: JSONDecoder {
    let decoder = JSONDecoder()
    decoder.dateDecodingStrategy = .iso8601
    return decoder
  }
}
