extension Duration {
  /// Whole milliseconds, rounded down: gRPC's `grpc-retry-pushback-ms`, logs.
  package var milliseconds: Int64 {
    self.components.seconds * 1000 + self.components.attoseconds / 1_000_000_000_000_000
  }
}
