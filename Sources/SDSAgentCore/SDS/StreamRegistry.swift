import Foundation
import Synchronization
import X509

/// The SDS streams open right now, for `/debug/streams`: who is connected, what it asked for,
/// and what it last accepted or rejected.
public final class StreamRegistry: Sendable {
  public struct Stream: Sendable {
    public let id: UInt64
    public let openedAt: Date
    public var nodeID: String?
    /// Whose secrets the stream gets.
    public var identity: String?
    public var resources: [String] = []
    public var lastSentVersion: String?
    public var lastAckedVersion: String?
    public var lastNackedNonce: String?
    public var lastNackMessage: String?
    /// The trust bundle in the last response sent, if it held one.
    public var sentTrustBundle: TrustBundle?
    /// The trust bundle in the last response the stream acknowledged, if it held one.
    public var acknowledgedTrustBundle: TrustBundle?
  }

  private struct State {
    var streams: [UInt64: Stream] = [:]
    var nextID: UInt64 = 1
  }

  private let state = Mutex(State())
  /// Signalled whenever a stream acknowledges a trust bundle.
  public let trustBundleAcknowledged = WakeSignal()

  public init() {}

  public func open(at date: Date) -> UInt64 {
    self.state.withLock { state in
      let id = state.nextID
      state.nextID += 1
      state.streams[id] = Stream(id: id, openedAt: date)
      return id
    }
  }

  public func update(_ id: UInt64, _ body: (inout Stream) -> Void) {
    self.state.withLock { state in
      if var stream = state.streams[id] {
        body(&stream)
        state.streams[id] = stream
      }
    }
  }

  /// Records that stream `id` acknowledged its last response.
  public func acknowledged(_ id: UInt64, version: String) {
    let heldBundle = self.state.withLock { state -> Bool in
      guard var stream = state.streams[id] else { return false }
      stream.lastAckedVersion = version
      stream.acknowledgedTrustBundle = stream.sentTrustBundle ?? stream.acknowledgedTrustBundle
      state.streams[id] = stream
      return stream.sentTrustBundle != nil
    }
    if heldBundle { self.trustBundleAcknowledged.signal() }
  }

  /// The open streams that hold a trust bundle but have not acknowledged one with `root`.
  public func streamsNotAcknowledging(_ root: Certificate) -> [Stream] {
    self.state.withLock { state in
      state.streams.values.filter { stream in
        stream.sentTrustBundle != nil && !(stream.acknowledgedTrustBundle?.roots.contains(root) ?? false)
      }.sorted { $0.id < $1.id }
    }
  }

  public func close(_ id: UInt64) {
    _ = self.state.withLock { $0.streams.removeValue(forKey: id) }
  }

  public var streams: [Stream] {
    self.state.withLock { $0.streams.values.sorted { $0.id < $1.id } }
  }
}
