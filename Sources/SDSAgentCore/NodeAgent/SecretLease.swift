/// One stream's hold on a caller's secrets; `release()` when the stream ends.
public struct SecretLease: Sendable {
  public let caller: Caller
  public let cache: SecretCache
  private let onRelease: @Sendable () -> Void

  init(caller: Caller, cache: SecretCache, onRelease: @escaping @Sendable () -> Void) {
    self.caller = caller
    self.cache = cache
    self.onRelease = onRelease
  }

  public func release() {
    self.onRelease()
  }
}
