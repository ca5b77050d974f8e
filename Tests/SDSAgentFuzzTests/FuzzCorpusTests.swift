import Foundation
import Testing

@testable import sds_agent_fuzz

/// Every committed fuzz input — the seeds and the crashes found so far — replayed through the
/// function the fuzzer ran, in the ordinary build: a crash fixed once stays fixed.
@Suite struct FuzzCorpusTests {
  static let corpus = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("fuzz-corpus")

  @Test(arguments: FuzzTarget.all.map(\.name))
  func corpusReplays(target name: String) async throws {
    let target = try #require(FuzzTarget.named(name))
    let directory = Self.corpus.appendingPathComponent(name)
    let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { !$0.hasPrefix(".") }
    #expect(!files.isEmpty, "Tests/fuzz-corpus/\(name) has no seeds")
    let inputs = try files.sorted().map { try Data(contentsOf: directory.appendingPathComponent($0)) }
    // On a thread of its own, as under libFuzzer: the async targets block their caller until the
    // work is done on the concurrency pool, which must not be the caller's pool thread.
    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
      Thread {
        for input in inputs {
          _ = target.run(input)
        }
        done.resume()
      }.start()
    }
  }
}
