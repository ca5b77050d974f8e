extension WorkloadAPIService {
  /// Counts a call refused before its caller was identified; `method` is one the service
  /// serves and `outcome` a fixed code, never a client's text.
  package func countRefused(_ method: String, outcome: String) {
    self.count(method, outcome)
  }

  /// `call`, listed in `/debug/streams` and `sds-agent status` by its method while it is open.
  package func listed<Request, Response>(
    _ call: SecretStream<Request, Response>, method: StreamRegistry.Method, lease: SecretLease
  ) -> SecretStream<Request, Response> {
    guard let registry = self.registry else { return call }
    return registry.listing(call, method: method, identity: lease.caller.identity, at: self.now())
  }
}
