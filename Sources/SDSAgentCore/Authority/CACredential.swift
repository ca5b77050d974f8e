/// Whose authority a certificate request to a remote CA carries. The local CA ignores it.
package enum CACredential: Sendable, Hashable {
  /// The agent's own token (`token-file`), for the agent's own identity.
  case agent
  /// The caller's forwarded token: the CA authenticates the workload itself.
  case forwardedToken(String)
  /// The agent's own token plus Istio's `ImpersonatedIdentity`: the CA must trust the agent's
  /// identity as a node agent allowed to request certificates for the workloads on its node.
  case impersonation
}
