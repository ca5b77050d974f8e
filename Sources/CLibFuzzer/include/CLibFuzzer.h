#ifndef SDS_AGENT_CLIBFUZZER_H
#define SDS_AGENT_CLIBFUZZER_H
#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver (compiler-rt `FuzzerInterface.h`). Only a declaration: the definition
/// comes from libFuzzer, linked only when the fuzz target is built with `-sanitize=fuzzer`.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*UserCb)(const uint8_t *Data, size_t Size));

#endif
