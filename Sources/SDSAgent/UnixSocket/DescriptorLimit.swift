import Logging

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#endif

/// The process's limit on open descriptors: every Envoy connection holds one, and the soft
/// limit many systems start a process with (1024) is far below what the agent can serve.
package enum DescriptorLimit {
  /// The soft and hard `RLIMIT_NOFILE`.
  package static var current: (soft: UInt64, hard: UInt64) {
    var limit = rlimit()
    getrlimit(Self.resource, &limit)
    return (UInt64(limit.rlim_cur), UInt64(limit.rlim_max))
  }

  /// Raises the soft limit to the hard limit and logs the limit in force. Failure is logged, not
  /// thrown: under systemd the unit's `LimitNOFILE=` sets both, and its system call filter
  /// refuses `setrlimit`.
  package static func raiseToHardLimit(logger: Logger) {
    var limit = rlimit()
    guard getrlimit(Self.resource, &limit) == 0 else {
      logger.warning("cannot read the open-file limit", metadata: ["error": "\(Errno.current)"])
      return
    }
    if limit.rlim_cur < limit.rlim_max {
      let wanted = rlimit(rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max)
      var raised = wanted
      if setrlimit(Self.resource, &raised) == 0 {
        limit = wanted
      } else {
        logger.notice(
          "cannot raise the open-file limit to the hard limit",
          metadata: ["soft": "\(limit.rlim_cur)", "hard": "\(limit.rlim_max)", "error": "\(Errno.current)"])
      }
    }
    logger.info("open-file limit", metadata: ["soft": "\(limit.rlim_cur)", "hard": "\(limit.rlim_max)"])
  }

  #if canImport(Glibc)
    private static let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
  #else
    private static let resource = RLIMIT_NOFILE
  #endif
}
