import SDSAgentCore

/// What a `StreamLoad` reports of each of its streams, and when it closes them.
protocol StreamObserver: Sendable {
  /// Reached once every stream has its first response or has failed.
  var allFirstResponses: Milestone { get }
  /// Reached when the measurement is over: the streams close.
  var finish: Milestone { get }
  /// A stream's request was written at `instant`.
  func requested(stream: Int, at instant: ContinuousClock.Instant)
  func firstResponse(stream: Int)
  /// A response after the first on a `default` stream.
  func pushed(stream: Int, at instant: ContinuousClock.Instant)
  func failed(stream: Int, subscribedToDefault: Bool, _ error: any Error)
  /// Ends the measurement: every stream's request side closes.
  func close()
}

extension StreamObserver {
  func requested(stream: Int, at instant: ContinuousClock.Instant) {}
}

extension StreamTracker: StreamObserver {}
