extension SecretDiscoveryService {
  /// This service, serving the session ticket keys `provider` holds.
  package func serving(sessionTicketKeys provider: (any SessionTicketKeyProvider)?) -> SecretDiscoveryService {
    var service = self
    service.sessionTicketKeys = provider
    return service
  }
}
