import Foundation
import SDSAgentCore

extension FuzzTarget {
  /// `ValidateJWTSVID`'s check on arbitrary input (first line the audience, the rest the token),
  /// against a JWT bundle of `FuzzKey` for cluster.local at a fixed time. An accepted token is
  /// ES256, names a member of cluster.local, is unexpired and for the audience; a refusal is
  /// bounded and without control characters.
  static let jwtSVID = FuzzTarget(
    name: "jwt-svid",
    summary: "JWTSVIDValidator.validate on arbitrary tokens and audiences"
  ) { data in
    let text = String(decoding: data, as: UTF8.self)
    let (audience, token) =
      text.firstIndex(of: "\n").map { (String(text[..<$0]), String(text[text.index(after: $0)...])) } ?? ("", text)
    let validated: JWTSVIDValidator.Validated
    do throws(JWTSVIDFailure) {
      validated = try JWTSVIDFixture.validator.validate(token, audience: audience, now: JWTSVIDFixture.now)
    } catch {
      FuzzTarget.check(error.message.count <= 1024, "a refusal of \(error.message.count) characters")
      FuzzTarget.check(
        !error.message.unicodeScalars.contains { $0.properties.generalCategory == .control },
        "a refusal with a control character")
      return "refused (\(error.code.rawValue))"
    }
    FuzzTarget.check(validated.spiffeID.trustDomain == "cluster.local", "accepted a token of \(validated.spiffeID)")
    let header = JWTSVIDFixture.object(token.split(separator: ".", omittingEmptySubsequences: false).first)
    FuzzTarget.check(
      header?["alg"] as? String == "ES256", "accepted a token whose header is \(String(describing: header))")
    let claims = try? JSONSerialization.jsonObject(with: validated.claimsJSON) as? [String: Any]
    let exp = (claims?["exp"] as? NSNumber)?.doubleValue ?? 0
    FuzzTarget.check(exp > JWTSVIDFixture.now.timeIntervalSince1970, "accepted a token that expired at \(exp)")
    let aud = claims?["aud"]
    FuzzTarget.check(
      (aud as? String) == audience || (aud as? [String])?.contains(audience) == true,
      "accepted a token for \(String(describing: aud)) as one for \(audience.debugDescription)")
    return "accepted \(validated.spiffeID)"
  }
}

enum JWTSVIDFixture {
  static let now = Date(timeIntervalSince1970: 1_800_000_000)

  static let validator = JWTSVIDValidator(bundles: [
    JWTBundle(
      trustDomain: try! TrustDomainName(parsing: "cluster.local"), keys: [JWTSigningKey(FuzzKey.p256).publicKey])
  ])

  /// A base64url part as a JSON object, read independently of the validator.
  static func object(_ part: Substring?) -> [String: Any]? {
    guard var text = part.map(String.init) else { return nil }
    text = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    text += String(repeating: "=", count: (4 - text.count % 4) % 4)
    guard let data = Data(base64Encoded: text) else { return nil }
    return try? JSONSerialization.jsonObject(with: data) as? [String: Any]
  }
}
