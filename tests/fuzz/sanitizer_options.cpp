// Default sanitizer options of the sanitized executables (fuzz targets, reader tests); the
// ASAN_OPTIONS and UBSAN_OPTIONS variables still override them.
//   detect_leaks=0     libtorch's and OpenCV's process-lifetime singletons are never freed, so
//                      LeakSanitizer reports them at every exit; ssld's own leaks are not what
//                      these runs look for (and gtest's test discovery at build time would fail).
//   print_stacktrace=1 a UBSan report names only the faulting line without it.
extern "C" const char* __asan_default_options() { return "detect_leaks=0"; }
extern "C" const char* __ubsan_default_options() { return "print_stacktrace=1:halt_on_error=1"; }
