// Intentionally empty: SwiftPM needs a source file for the module of CLibFuzzer.h.
