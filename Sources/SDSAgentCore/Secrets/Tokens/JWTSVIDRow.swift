import Foundation

/// One identity's JWT-SVIDs served over SDS (`jwt-svid:<audience>`), by audience, each with the
/// revision it was served at. Part of the identity's own secrets (`IdentitySecrets`): a token is
/// per identity and audience, never shared.
struct JWTSVIDRow: Sendable {
  private(set) var tokens: [JWTAudience: (svid: JWTSVID, revision: UInt64)] = [:]
  /// Changes whenever a token is added, replaced or dropped.
  private(set) var revision: UInt64 = 0

  /// Serves exactly `svids` from now on; an audience whose token changed gets `revision`.
  mutating func set(_ svids: [JWTAudience: JWTSVID], revision: UInt64) {
    var changed = svids.count != self.tokens.count
    var next: [JWTAudience: (svid: JWTSVID, revision: UInt64)] = [:]
    for (audience, svid) in svids {
      if let current = self.tokens[audience], current.svid.token == svid.token {
        next[audience] = current
      } else {
        next[audience] = (svid, revision)
        changed = true
      }
    }
    guard changed else { return }
    self.tokens = next
    self.revision = revision
  }

  /// Whether a token has expired by `date`.
  func hasExpired(at date: Date) -> Bool {
    self.tokens.values.contains { $0.svid.expiresAt <= date }
  }

  /// The same tokens without those expired by `date`, for one stream's view: what is served does
  /// not change, so neither does the revision.
  func unexpired(at date: Date) -> JWTSVIDRow {
    var row = self
    row.tokens = self.tokens.filter { $0.value.svid.expiresAt > date }
    return row
  }
}
