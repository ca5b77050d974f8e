import Foundation
import Logging
import SDSAgentCore
import ServiceLifecycle
import Synchronization

/// Fetch mode's `ca-crl` file (PEM with one or more CRLs, or one DER CRL; istiod's plugged-in
/// `ca-crl.pem`), watched like `ca-root`: read `settle` after a change and looked at every
/// `recheck` regardless, on the injected clock, and offered to the CRL follower, which verifies
/// each CRL before it is served. A file that cannot be read keeps the last good CRLs.
package final class CRLFileWatcher<C: Clock>: Service, Sendable where C.Duration == Duration {
  private let path: String
  private let follower: CRLFollower<C>
  private let watch: FileWatch
  private let clock: any Clock<Duration>
  private let settle: Duration
  private let recheck: Duration
  private let seen: Mutex<FileSignature?>

  package init(
    path: String, follower: CRLFollower<C>, watching files: FileWatchService,
    clock: any Clock<Duration> = ContinuousClock(), settle: Duration = .milliseconds(150),
    recheck: Duration = .seconds(10)
  ) {
    self.path = path
    self.follower = follower
    self.watch = files.follow([path])
    self.clock = clock
    self.settle = settle
    self.recheck = recheck
    self.seen = Mutex(nil)
  }

  package func run() async {
    await cancelWhenGracefulShutdown {
      self.check(force: false)
      await self.watch.run(settle: self.settle, recheck: self.recheck, clock: self.clock) {
        self.check(force: false)
      }
    }
  }

  /// Reads the file if it changed since it was last read (or with `force`) and offers its CRLs.
  package func check(force: Bool) {
    let signature = FileSignature(path: self.path)
    let changed = self.seen.withLock { seen in
      defer { seen = signature }
      return seen != signature
    }
    guard changed || force else { return }
    switch Self.read(self.path, signature: signature) {
    case .success(let bytes): self.follower.offer(bytes, from: .file, origin: self.path)
    case .failure(let failure): self.follower.refuse(failure, from: .file, origin: self.path)
    }
  }

  private static func read(_ path: String, signature: FileSignature?) -> Result<[UInt8], CRLFetchFailure> {
    guard let signature else {
      return .failure(CRLFetchFailure(.unreadable, "it does not exist or cannot be looked at: \(Errno.current)"))
    }
    let maximum = CertificateRevocationList.maximumEncodedLength
    guard signature.size <= maximum else {
      return .failure(CRLFetchFailure(.tooLarge, "it is \(signature.size) bytes; a CRL file is read up to \(maximum)"))
    }
    guard let handle = FileHandle(forReadingAtPath: path) else {
      return .failure(CRLFetchFailure(.unreadable, "it cannot be opened: \(Errno.current)"))
    }
    defer { try? handle.close() }
    let data: Data
    do {
      // nil at the end of the file: an empty file.
      data = try handle.read(upToCount: maximum + 1) ?? Data()
    } catch {
      return .failure(CRLFetchFailure(.unreadable, "it cannot be read", cause: error))
    }
    guard data.count <= maximum else {
      return .failure(CRLFetchFailure(.tooLarge, "it grew past \(maximum) bytes as it was read"))
    }
    return .success(Array(data))
  }
}
