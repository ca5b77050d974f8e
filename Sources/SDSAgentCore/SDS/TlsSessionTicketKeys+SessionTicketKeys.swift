import EnvoySDSProtos

extension Envoy_Extensions_TransportSockets_Tls_V3_TlsSessionTicketKeys {
  /// The keys in the order `keys` holds them: Envoy encrypts with the first.
  init(_ keys: SessionTicketKeys) {
    self.init()
    self.keys = keys.keys.map { key in
      var source = Envoy_Config_Core_V3_DataSource()
      source.inlineBytes = key
      return source
    }
  }
}
