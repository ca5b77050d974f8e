import Foundation

/// One function under fuzzing: it takes any bytes, must not crash, and traps (through
/// `FuzzTarget.check`) when an invariant of the code under test does not hold. It returns what
/// became of the input, for replays (a seed that is rejected early explores little).
struct FuzzTarget: Sendable {
  let name: String
  let summary: String
  let run: @Sendable (Data) -> String

  static let all: [FuzzTarget] = [
    .configFile, .duration, .spiffeID, .caResponse, .jwt, .sdsStream, .grpcFraming, .deltaStream, .bundleDocument,
    .onDemandName, .adminRouter, .crl, .jwtSVID,
  ]

  static func named(_ name: String) -> FuzzTarget? {
    self.all.first { $0.name == name }
  }

  /// An invariant of the code under test; a violation is a finding, so it ends the process the
  /// way a crash does (libFuzzer saves the input).
  static func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition {
      fatalError("invariant violated: \(message())")
    }
  }
}
