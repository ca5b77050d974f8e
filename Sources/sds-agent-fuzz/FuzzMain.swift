import Foundation

// Two builds of one target. With `-DSDS_AGENT_FUZZING -sanitize=fuzzer,address` (dev/fuzz.sh)
// libFuzzer drives the target named by FUZZ_TARGET. In the ordinary build the same targets
// replay files (a corpus, a crash), so `swift build` never links libFuzzer and the regression
// tests call the very functions the fuzzer ran.

#if SDS_AGENT_FUZZING
  import CLibFuzzer

  /// The target libFuzzer runs, from FUZZ_TARGET.
  private let selectedTarget: FuzzTarget? = ProcessInfo.processInfo.environment["FUZZ_TARGET"].flatMap(
    FuzzTarget.named)

  @_cdecl("LLVMFuzzerTestOneInput")
  public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = data.map { Data(bytes: $0, count: size) } ?? Data()
    _ = selectedTarget?.run(input)
    return 0
  }

  /// The executable's entry point. SwiftPM links executables with `main` renamed to
  /// `<module>_main` (so tests can link them); that is this function, which hands over to
  /// libFuzzer's driver — libFuzzer's own `main` is not used.
  @_cdecl("sds_agent_fuzz_main")
  public func fuzzMain(
    _ argc: CInt,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
  ) -> CInt {
    guard selectedTarget != nil else {
      let names = FuzzTarget.all.map(\.name).joined(separator: ", ")
      FileHandle.standardError.write(Data("set FUZZ_TARGET to one of: \(names)\n".utf8))
      return 2
    }
    var argc = argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzzOneInput(data, size) }
  }

#else

  /// `sds-agent-fuzz <target> <file or directory>…` replays inputs through a target;
  /// `sds-agent-fuzz list` names the targets.
  @main
  struct FuzzReplay {
    static func main() {
      let arguments = Array(CommandLine.arguments.dropFirst())
      guard let name = arguments.first, name != "list", let target = FuzzTarget.named(name) else {
        for target in FuzzTarget.all {
          print("\(target.name): \(target.summary)")
        }
        print("usage: sds-agent-fuzz <target> <file or directory>… (this build replays; dev/fuzz.sh fuzzes)")
        exit(arguments.first == "list" ? 0 : 2)
      }
      var count = 0
      for file in arguments.dropFirst().flatMap(Self.files(at:)) {
        guard let data = FileManager.default.contents(atPath: file) else {
          print("cannot read \(file)")
          exit(1)
        }
        print("\(file): \(target.run(data))")
        count += 1
      }
      print("\(target.name): replayed \(count) input(s) without a finding")
    }

    static func files(at path: String) -> [String] {
      var isDirectory: ObjCBool = false
      guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
        return [path]
      }
      let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
      return names.filter { !$0.hasPrefix(".") }.sorted().map { path + "/" + $0 }
    }
  }
#endif
