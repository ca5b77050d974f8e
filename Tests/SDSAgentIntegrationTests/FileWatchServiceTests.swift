import Foundation
import Logging
import Testing

@testable import SDSAgent

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// The one inotify watch against real directories: a change where a followed file lies is
/// signalled, links are followed into the directories they resolve into, a directory that does
/// not exist yet is watched once it appears, and a follower that lets go of a file stops
/// watching its directory.
@Suite(.timeLimit(.minutes(1))) struct FileWatchServiceTests {
  let files: WatchedFiles

  init() throws {
    self.files = try WatchedFiles()
  }

  func withService(_ body: () async throws -> Void) async throws {
    try await withThrowingDiscardingTaskGroup { group in
      group.addTask { await self.files.service.run() }
      try await body()
      group.cancelAll()
    }
  }

  /// Waits for signals until `watch` is watched through exactly `directories`.
  func awaitDirectories(_ directories: Set<String>, of watch: FileWatch) async {
    while watch.directories != directories {
      await watch.changes.wait()
    }
  }

  @Test func aFileWrittenWhereAFollowedFileLiesIsSignalled() async throws {
    let watch = self.files.service.follow([self.files.path("cert.pem")])
    #expect(watch.directories == [self.files.directory])
    try await self.withService {
      try self.files.install("first", at: self.files.path("cert.pem"))
      await watch.changes.wait()
      try "in place".write(toFile: self.files.path("cert.pem"), atomically: false, encoding: .utf8)
      await watch.changes.wait()
    }
  }

  @Test func aDirectoryThatDoesNotExistYetIsWatchedOnceItAppears() async throws {
    let later = self.files.path("later/live")
    let watch = self.files.service.follow([later + "/cert.pem"])
    #expect(watch.directories == [self.files.directory])
    try await self.withService {
      try FileManager.default.createDirectory(atPath: self.files.path("later"), withIntermediateDirectories: false)
      await self.awaitDirectories([self.files.path("later")], of: watch)
      try FileManager.default.createDirectory(atPath: later, withIntermediateDirectories: false)
      await self.awaitDirectories([later], of: watch)
      try self.files.install("first", at: later + "/cert.pem")
      await watch.changes.wait()
    }
  }

  @Test func aLinkIsFollowedIntoItsDirectoryAndAgainWhenItIsSwapped() async throws {
    let manager = FileManager.default
    for generation in ["..1", "..2"] {
      try manager.createDirectory(atPath: self.files.path(generation), withIntermediateDirectories: false)
      try self.files.install(generation, at: self.files.path(generation + "/tls.crt"))
    }
    try manager.createSymbolicLink(atPath: self.files.path("..data"), withDestinationPath: "..1")
    try manager.createSymbolicLink(atPath: self.files.path("tls.crt"), withDestinationPath: "..data/tls.crt")
    let watch = self.files.service.follow([self.files.path("tls.crt")])
    #expect(watch.directories == [self.files.directory, self.files.path("..1")])
    try await self.withService {
      // kubelet's swap: a new ..data link renamed over the old one.
      try manager.createSymbolicLink(atPath: self.files.path("..data_tmp"), withDestinationPath: "..2")
      #expect(rename(self.files.path("..data_tmp"), self.files.path("..data")) == 0)
      await self.awaitDirectories([self.files.directory, self.files.path("..2")], of: watch)
      try self.files.install("changed", at: self.files.path("..2/tls.crt"))
      await watch.changes.wait()
    }
  }

  @Test func followingOtherFilesWatchesTheirDirectoriesInstead() throws {
    let other = self.files.path("other")
    try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: false)
    let watch = self.files.service.follow([self.files.path("a.pem")])
    let second = self.files.service.follow([self.files.path("b.pem")])
    watch.follow([other + "/a.pem"])
    #expect(watch.directories == [other])
    #expect(second.directories == [self.files.directory])
    watch.follow([])
    #expect(watch.directories.isEmpty)
  }
}
