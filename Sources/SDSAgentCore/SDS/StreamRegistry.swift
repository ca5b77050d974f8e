import Foundation
import Synchronization
import X509

/// The SDS streams open right now, for `/debug/streams`: who is connected, what it asked for,
/// and what it last accepted or rejected; and the Workload API's calls, by method.
package final class StreamRegistry: Sendable {
  package struct Stream: Sendable {
    package let id: UInt64
    package let openedAt: Date
    /// The RPC the stream is a call of.
    package var method = Method.streamSecrets
    package var nodeID: String?
    /// Whose secrets the stream gets.
    package var identity: String?
    package var resources: [String] = []
    package var lastSentVersion: String?
    package var lastAckedVersion: String?
    package var lastNackedNonce: String?
    package var lastNackMessage: String?
    /// The trust bundle in the last response sent, if it held one.
    package var sentTrustBundle: TrustBundle?
    /// The trust bundle in the last response the stream acknowledged, if it held one.
    package var acknowledgedTrustBundle: TrustBundle?
  }

  private struct State {
    var streams: [UInt64: Stream] = [:]
    var nextID: UInt64 = 1
  }

  private let state = Mutex(State())
  /// Signalled whenever a stream acknowledges a trust bundle.
  package let trustBundleAcknowledged = WakeSignal()

  package init() {}

  package func open(at date: Date, method: Method = .streamSecrets) -> UInt64 {
    self.state.withLock { state in
      let id = state.nextID
      state.nextID += 1
      state.streams[id] = Stream(id: id, openedAt: date, method: method)
      return id
    }
  }

  package func update(_ id: UInt64, _ body: (inout Stream) -> Void) {
    self.state.withLock { state in
      // In place: every response updates its stream's row.
      if let index = state.streams.index(forKey: id) { body(&state.streams.values[index]) }
    }
  }

  /// Records that stream `id` acknowledged its last response.
  package func acknowledged(_ id: UInt64, version: String) {
    let heldBundle = self.state.withLock { state -> Bool in
      guard var stream = state.streams[id] else { return false }
      stream.lastAckedVersion = version
      stream.acknowledgedTrustBundle = stream.sentTrustBundle ?? stream.acknowledgedTrustBundle
      state.streams[id] = stream
      return stream.sentTrustBundle != nil
    }
    if heldBundle { self.trustBundleAcknowledged.signal() }
  }

  /// The open SDS streams that hold a trust bundle but have not acknowledged one with `root`
  /// (Workload API calls acknowledge nothing).
  package func streamsNotAcknowledging(_ root: Certificate) -> [Stream] {
    self.state.withLock { state in
      state.streams.values.filter { stream in
        !stream.method.isWorkloadAPI && stream.sentTrustBundle != nil
          && !(stream.acknowledgedTrustBundle?.roots.contains(root) ?? false)
      }.sorted { $0.id < $1.id }
    }
  }

  package func close(_ id: UInt64) {
    _ = self.state.withLock { $0.streams.removeValue(forKey: id) }
  }

  package var streams: [Stream] {
    self.state.withLock { $0.streams.values.sorted { $0.id < $1.id } }
  }
}
