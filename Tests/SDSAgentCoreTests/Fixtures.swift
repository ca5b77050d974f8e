import Foundation
import SDSAgentCore

enum Fixtures {
  static let now = Date(timeIntervalSince1970: 1_800_000_000)
  static let identity = try! SPIFFEID(parsing: "spiffe://cluster.local/ns/default/sa/default")
  static let material = try! CAMaterial.generateRoot(trustDomain: "cluster.local", now: now)

  static func issue(ttl: Duration = .seconds(3600), at date: Date = now) throws -> IssuedSVID {
    try LocalCA(material: self.material).certify(
      identity: self.identity,
      privateKey: try WorkloadKeyType.ecdsaP256.generate(),
      ttl: ttl,
      now: date
    )
  }
}
