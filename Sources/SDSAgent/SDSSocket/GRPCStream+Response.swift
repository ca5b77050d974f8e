import GRPCCore
import NIOCore
import NIOHPACK
import NIOHTTP2
import SDSAgentCore

/// Writing what the call answers: one response at a time, the newest held while the stream
/// cannot be written, then the trailers.
extension GRPCStream {
  func perform(_ step: GRPCSocketCall.Step) {
    switch step {
    case .wait:
      return
    case .send(let message):
      self.send(message)
    case .sendAndEnd(let message):
      // A unary call's one response is written whether or not the stream can take it.
      self.write(message)
      self.finish(.ok)
    case .end:
      self.finish(.ok)
    case .later(let answer):
      let eventLoop = self.eventLoop
      let handler = NIOLoopBound(self, eventLoop: eventLoop)
      self.admission = Task {
        let result: Result<GRPCSocketCall.Step, RPCError>
        do throws(RPCError) {
          result = .success(try await answer())
        } catch {
          result = .failure(error)
        }
        eventLoop.execute {
          guard case .open = handler.value.machine.phase else { return }
          switch result {
          case .success(let step): handler.value.perform(step)
          case .failure(let error): handler.value.finish(GRPCStatus(error))
          }
        }
      }
    }
  }

  /// Writes a streaming call's response if the stream can take it; otherwise holds it.
  func send(_ message: ByteBuffer) {
    guard self.isOpen else { return }
    guard self.isWritable, self.unsent.isEmpty else {
      self.hold(message)
      return
    }
    self.write(message)
    self.flush()
  }

  /// Keeps a response for when the stream is writable: the newest instead of the one held for
  /// `StreamSecrets`, where each response is the whole state; after those held for
  /// `DeltaSecrets`, whose stream is reset once it holds too many.
  func hold(_ message: ByteBuffer) {
    if !self.incremental, let replaced = self.unsent.popLast() {
      self.connection.unsentChanged(by: -replaced.readableBytes)
    }
    self.unsent.append(message)
    self.connection.unsentChanged(by: message.readableBytes)
    if self.unsent.count > self.maximumUnsentDeltaResponses {
      // The client has not taken its responses for a long time; it resubscribes on a new stream.
      self.end()
      self.reset()
    }
  }

  func writeUnsent() {
    guard !self.unsent.isEmpty, case .open = self.machine.phase, self.isWritable else { return }
    let unsent = self.unsent
    self.unsent.removeAll()
    for message in unsent {
      self.connection.unsentChanged(by: -message.readableBytes)
      self.write(message)
    }
    self.flush()
  }

  /// Writes one framed response message, after the response head if it is the first.
  func write(_ framed: ByteBuffer) {
    guard self.isOpen else { return }
    if let head = self.machine.responseHead() {
      self.connection.write(.headers(.init(headers: head)), on: self.streamID)
    }
    // Counted before the write: the HTTP/2 handler reports it passed on within the flush.
    self.inFlightBytes += framed.readableBytes
    self.connection.unsentChanged(by: framed.readableBytes)
    self.connection.write(.data(.init(data: .byteBuffer(framed))), on: self.streamID)
  }

  /// Flushes what this stream wrote (also once the stream closed as it wrote its last frame).
  func flush() {
    self.connection.flushStream()
  }

  /// Stops the stream with `RST_STREAM(CANCEL)`; the HTTP/2 handler then closes it.
  func reset() {
    guard self.isOpen else { return }
    self.connection.write(.rstStream(.cancel), on: self.streamID)
    self.connection.flushStream()
  }

  /// Ends the call with `status` in its trailers (trailers-only if nothing was sent, with
  /// `httpStatus`), then stops a client still sending with `RST_STREAM(NO_ERROR)`.
  func finish(_ status: GRPCStatus, httpStatus: Int = 200) {
    if self.machine.isClosed { return }
    // Responses held for the stream go before its trailers (HTTP/2 queues them in order).
    let unsent = self.unsent
    self.end()
    for message in unsent { self.write(message) }
    guard self.isOpen else { return }
    let ending = self.machine.ending(status, httpStatus: httpStatus)
    self.connection.write(.headers(.init(headers: ending.trailers, endStream: true)), on: self.streamID)
    if ending.resetsStream, self.isOpen {
      self.connection.write(.rstStream(.noError), on: self.streamID)
    }
    self.flush()
  }

  /// Releases everything the call holds.
  func end() {
    self.deadline?.cancel()
    self.deadline = nil
    self.admission?.cancel()
    self.admission = nil
    if let followed = self.followed {
      self.connection.unfollow(followed, by: self)
      self.followed = nil
    }
    self.call?.close()
    self.call = nil
    self.machine.close()
    // What was written stays counted until it leaves or the stream closes (`channelInactive`).
    self.connection.unsentChanged(by: -self.unsent.reduce(0) { $0 + $1.readableBytes })
    self.unsent = []
  }
}
