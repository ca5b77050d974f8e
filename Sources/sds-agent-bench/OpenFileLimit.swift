#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// The bench's own RLIMIT_NOFILE, inherited by the agent and the baseline server it starts.
enum OpenFileLimit {
  /// Raises the soft limit to the hard limit if it can; returns the soft limit in force. Each side
  /// holds one descriptor per HTTP/2 connection (100 for 50,000 streams at 500 a connection), so
  /// this matters only for a small `--streams-per-connection`.
  @discardableResult
  static func raiseToHardLimit() -> UInt64 {
    var limit = rlimit()
    guard getrlimit(Self.resource, &limit) == 0 else { return 0 }
    if limit.rlim_cur < limit.rlim_max {
      var raised = rlimit(rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max)
      if setrlimit(Self.resource, &raised) == 0 { limit = raised }
    }
    return UInt64(limit.rlim_cur)
  }

  #if canImport(Glibc)
    private static let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
  #else
    private static let resource = RLIMIT_NOFILE
  #endif
}
