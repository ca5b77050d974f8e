import SDSAgentCore

/// Another trust domain's bundle and the file it is read from: `--trust-bundle
/// spiffe://other.example=/path/to/bundle`.
package struct FederatedBundleSource: Sendable, Hashable, CustomStringConvertible {
  package let trustDomain: TrustDomainName
  package let path: String

  package init(trustDomain: TrustDomainName, path: String) {
    self.trustDomain = trustDomain
    self.path = path
  }

  package var description: String { "spiffe://\(self.trustDomain)=\(self.path)" }

  package static let syntax = "spiffe://<trust-domain>=<file>, the file PEM or a SPIFFE bundle document"

  package init(parsing text: String) throws(ConfigurationError) {
    guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
      throw ConfigurationError(key: "trust-bundle", value: text, allowed: Self.syntax)
    }
    let path = String(text[text.index(after: equals)...])
    guard !path.isEmpty else {
      throw ConfigurationError(key: "trust-bundle", value: text, allowed: Self.syntax + " (the file is missing)")
    }
    do throws(TrustDomainNameError) {
      self.init(trustDomain: try TrustDomainName(parsing: String(text[..<equals])), path: path)
    } catch {
      throw ConfigurationError(
        key: "trust-bundle", value: text, allowed: Self.syntax + " (the trust domain: \(error.reason))")
    }
  }
}
