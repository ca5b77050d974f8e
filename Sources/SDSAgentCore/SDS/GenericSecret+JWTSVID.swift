import EnvoySDSProtos

extension Envoy_Extensions_TransportSockets_Tls_V3_GenericSecret {
  /// `Bearer <JWT>`: Envoy's generic credential (`envoy.http.injected_credentials.generic`) puts
  /// the secret into its header as it is, and Envoy 1.40's has no `header_value_prefix`.
  init(bearer svid: JWTSVID) {
    self.init()
    self.secret.inlineString = "Bearer " + svid.token
  }
}
