import Foundation
import Synchronization

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
  }

  private struct State {
    var streams: [UInt64: Stream] = [:]
    var nextID: UInt64 = 1
  }

  private let state = Mutex(State())

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

  public func close(_ id: UInt64) {
    _ = self.state.withLock { $0.streams.removeValue(forKey: id) }
  }

  public var streams: [Stream] {
    self.state.withLock { $0.streams.values.sorted { $0.id < $1.id } }
  }
}
