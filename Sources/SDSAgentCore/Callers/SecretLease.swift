/// One stream's hold on a caller's secrets; `release()` when the stream ends.
package struct SecretLease: Sendable {
  package let caller: Caller
  package let cache: SecretCache
  private let onRelease: @Sendable () -> Void
  private let onExpired: @Sendable () -> Void

  init(
    caller: Caller, cache: SecretCache, onExpired: @escaping @Sendable () -> Void = {},
    onRelease: @escaping @Sendable () -> Void
  ) {
    self.caller = caller
    self.cache = cache
    self.onExpired = onExpired
    self.onRelease = onRelease
  }

  /// The cache holds a certificate that has expired by the wall clock (after a suspend or a clock
  /// step): its renewal is due now, not at the next timer.
  package func noticeExpired() {
    self.onExpired()
  }

  package func release() {
    self.onRelease()
  }
}
