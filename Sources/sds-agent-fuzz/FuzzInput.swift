import Foundation

/// Reads structured choices out of the fuzzer's bytes. Running out of bytes is normal: every
/// read then returns the smallest value, so every input is a valid program.
struct FuzzInput {
  private var rest: Data.SubSequence

  init(_ data: Data) {
    self.rest = data[...]
  }

  var isEmpty: Bool { self.rest.isEmpty }

  mutating func byte() -> UInt8 {
    self.rest.popFirst() ?? 0
  }

  mutating func uint16() -> UInt16 {
    UInt16(self.byte()) | UInt16(self.byte()) << 8
  }

  mutating func bytes(_ count: Int) -> Data {
    let taken = self.rest.prefix(count)
    self.rest = self.rest.dropFirst(taken.count)
    return Data(taken)
  }

  /// A string of up to 255 bytes (length first), decoded leniently: invalid UTF-8 is replaced.
  mutating func string() -> String {
    String(decoding: self.bytes(Int(self.byte())), as: UTF8.self)
  }

  /// One of `choices`, or (as often as any one of them) what `other` reads from the input.
  mutating func pick<T>(_ choices: [T], or other: (inout FuzzInput) -> T) -> T {
    let index = Int(self.byte()) % (choices.count + 1)
    return index < choices.count ? choices[index] : other(&self)
  }
}

/// Runs async code under test from libFuzzer's synchronous callback. The fuzzer's thread blocks;
/// the work runs on the concurrency pool.
func runBlocking<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
  let box = ResultBox<T>()
  let done = DispatchSemaphore(value: 0)
  Task.detached {
    box.set(await body())
    done.signal()
  }
  done.wait()
  return box.get()
}

private final class ResultBox<T: Sendable>: @unchecked Sendable {
  // Written once by the task before `signal`, read once after `wait`: the semaphore orders them.
  private var value: T?

  func set(_ value: T) { self.value = value }
  func get() -> T { self.value! }
}
