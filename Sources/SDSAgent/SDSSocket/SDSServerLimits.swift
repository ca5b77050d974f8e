import NIOCore

/// The SDS socket's limits on what one connection may hold or send. The defaults are the
/// agent's: this is their one declaration.
package struct SDSServerLimits: Sendable {
  package init() {}

  /// Streams open at once on one connection (Envoy opens one per secret).
  package var maximumStreamsPerConnection = 4096
  /// The largest request message; a larger one ends its call with `RESOURCE_EXHAUSTED`.
  package var maximumRequestBytes = 4 * 1024 * 1024
  /// Streams a client may reset before they got a response, within `resetWindow`, before the
  /// connection is closed with `ENHANCE_YOUR_CALM` (the rapid-reset attack, CVE-2023-44487).
  /// Streams reset after they were served (Envoy dropping secrets) do not count.
  package var maximumUnservedResets = 200
  package var resetWindow = TimeAmount.seconds(30)
  /// A connection without streams for this long is closed.
  package var maximumIdleTime = TimeAmount.seconds(300)
  /// A PING every `keepaliveTime`; a peer silent for `silentPeerTimeout` is closed.
  package var keepaliveTime = TimeAmount.seconds(60)
  package var silentPeerTimeout = TimeAmount.seconds(120)
  /// Response bytes one connection may hold unsent (written to streams whose client has not taken
  /// them, or waiting for such a stream) for `unsentGrace`; at twice this it is closed at once.
  package var maximumUnsentBytesPerConnection = 16 * 1024 * 1024
  package var unsentGrace = TimeAmount.seconds(10)
  /// Responses a `DeltaSecrets` stream that cannot be written may hold (they carry changes, so
  /// none replaces another); one more resets the stream. A `StreamSecrets` stream holds one.
  package var maximumUnsentDeltaResponses = 16
  /// How long streams may take to end after the agent started to stop.
  package var shutdownGrace = TimeAmount.seconds(5)

  /// Every reset, served or not, within `resetWindow`: a backstop that scales with the stream
  /// limit, so that a client cancelling all its streams at once is never cut off.
  package var maximumResets: Int { 4 * self.maximumStreamsPerConnection }
}
