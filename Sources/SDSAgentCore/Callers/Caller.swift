/// An identified caller: whose secrets it gets, and with which credential its certificates are
/// requested.
package struct Caller: Sendable, Equatable, CustomStringConvertible {
  package var identity: SPIFFEID
  package var credential: CACredential
  /// `false` for a forwarded token no one has verified yet: the CA must accept it before the
  /// caller is served anything.
  package var isVerified: Bool
  /// How the caller was identified, for logs: `uid=1001 gid=1001 pid=7`, `token`, ….
  package var evidence: String

  package init(identity: SPIFFEID, credential: CACredential, isVerified: Bool, evidence: String) {
    self.identity = identity
    self.credential = credential
    self.isVerified = isVerified
    self.evidence = evidence
  }

  package var description: String { "\(self.identity) (\(self.evidence))" }
}
