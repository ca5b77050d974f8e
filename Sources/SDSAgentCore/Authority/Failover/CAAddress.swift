/// One address of a remote CA: a host (a name or an IP) and a port.
package struct CAAddress: Sendable, Hashable, CustomStringConvertible {
  package let host: String
  package let port: Int

  package init(host: String, port: Int) {
    self.host = host
    self.port = port
  }

  /// `host:port`, with an IPv6 host in brackets.
  package var description: String {
    self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)"
  }
}
