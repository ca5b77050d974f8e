extension SDSRequestError {
  /// An on-demand name asked for by a caller `--on-demand-callers` does not name: an on-demand
  /// certificate is a server key, given only to the identities named.
  static func onDemandWithheld(_ names: [String], caller: SPIFFEID) -> Self {
    Self(
      code: .forbiddenName,
      message: "\(caller) may not ask for the on-demand certificate(s) \(Self.quoted(names)): "
        + "--on-demand-callers does not name it")
  }
}
