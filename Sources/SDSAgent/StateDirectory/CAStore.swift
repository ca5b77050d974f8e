import Foundation
import SDSAgentCore
import SwiftASN1
import X509

/// Loads the signing CA: the operator's files, or a root generated on first start and kept in
/// the state directory (directory 0700, key 0600) so restarts keep the same trust bundle.
package enum CAStore {
  package static let certificateFileName = "ca-cert.pem"
  package static let keyFileName = "ca-key.pem"

  package static func load(
    _ source: AgentConfiguration.CASource,
    stateDirectory: String,
    trustDomain: String,
    now: Date = Date()
  ) throws -> CAMaterial {
    switch source {
    case .files(let certificatePath, let keyPath, let chainPath):
      return try self.loadOperatorFiles(certificate: certificatePath, key: keyPath, chain: chainPath)
    case .generated:
      return try self.loadOrGenerate(stateDirectory: stateDirectory, trustDomain: trustDomain, now: now)
    }
  }

  static func loadOperatorFiles(certificate: String, key: String, chain: String?) throws -> CAMaterial {
    let certificatePEM = try SecureFile.read(certificate, isPrivate: false, what: "CA certificate")
    let keyPEM = try SecureFile.read(key, isPrivate: true, what: "CA key")
    let chainPEM = try chain.map { path throws(AgentError) in
      try SecureFile.read(path, isPrivate: false, what: "CA chain")
    }
    do {
      let certificates = try PEMDocument.parseMultiple(pemString: certificatePEM).map(Certificate.init(pemDocument:))
      guard let signing = certificates.first else {
        throw AgentError(.caFiles, "\(certificate) holds no certificate")
      }
      let chainCertificates =
        try chainPEM.map {
          try PEMDocument.parseMultiple(pemString: $0).map(Certificate.init(pemDocument:))
        } ?? []
      let privateKey = try Certificate.PrivateKey(pemEncoded: keyPEM)
      return try CAMaterial(
        certificate: signing,
        privateKey: privateKey,
        chain: Array(certificates.dropFirst()) + chainCertificates
      )
    } catch let error as AgentError {
      throw error
    } catch let error as CAMaterialError {
      throw AgentError(
        .caFiles, "the CA in \(certificate), \(key)\(chain.map { ", \($0)" } ?? "") cannot be used", cause: error)
    } catch {
      throw AgentError(
        .caFiles, "cannot parse the CA files \(certificate), \(key)\(chain.map { ", \($0)" } ?? "")", cause: error)
    }
  }

  static func loadOrGenerate(stateDirectory: String, trustDomain: String, now: Date) throws -> CAMaterial {
    try SecureFile.ensurePrivateDirectory(stateDirectory)
    let certificatePath = (stateDirectory as NSString).appendingPathComponent(self.certificateFileName)
    let keyPath = (stateDirectory as NSString).appendingPathComponent(self.keyFileName)
    if SecureFile.exists(certificatePath) || SecureFile.exists(keyPath) {
      return try self.loadOperatorFiles(certificate: certificatePath, key: keyPath, chain: nil)
    }
    let material = try CAMaterial.generateRoot(trustDomain: trustDomain, now: now)
    // Key first: a certificate without its key would make the next start fail.
    try SecureFile.write(try material.privateKey.serializeAsPEM().pemString + "\n", to: keyPath, mode: 0o600)
    try SecureFile.write(try material.certificate.pemString() + "\n", to: certificatePath, mode: 0o644)
    return material
  }
}
