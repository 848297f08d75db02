# The sanitizer and fuzzing build (scripts/fuzz.sh configures it in build-sanitize/, with clang):
#   SSLD_SANITIZE  every ssld target of this tree (host, plugins, tests) is compiled and linked
#                  with AddressSanitizer + UndefinedBehaviorSanitizer; a UB report aborts like an
#                  ASan one. libtorch, OpenCV and the other Debian libraries stay uninstrumented
#                  (they are prebuilt), so only ssld's own code is checked.
#   SSLD_FUZZ      (clang only; implies SSLD_SANITIZE) adds libFuzzer's coverage instrumentation
#                  (-fsanitize=fuzzer-no-link) to the same code and builds tests/fuzz/, one
#                  executable per reader, linked with -fsanitize=fuzzer.
# Both are off by default: the default build is unchanged.
option(SSLD_SANITIZE "Build ssld with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)
option(SSLD_FUZZ "Build the libFuzzer targets of tests/fuzz (clang only; implies SSLD_SANITIZE)" OFF)

if(SSLD_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "SSLD_FUZZ needs clang (libFuzzer); configure with -DCMAKE_CXX_COMPILER=clang++-14")
  endif()
  set(SSLD_SANITIZE ON CACHE BOOL "" FORCE)
endif()

if(SSLD_SANITIZE)
  # Directory-wide, before sdk/, host/, plugins/ and tests/ are added: every target compiled in
  # this tree gets them, including the precompiled torch header (its flags must match its users').
  set(SSLD_SANITIZER_FLAGS -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  add_compile_options(${SSLD_SANITIZER_FLAGS})
  add_link_options(-fsanitize=address,undefined)
  if(SSLD_FUZZ)
    add_compile_options(-fsanitize=fuzzer-no-link)
  endif()
  # Plugins link with --no-undefined, but with clang the sanitizer runtime (and libFuzzer's
  # coverage callbacks) live only in the executable, which exports them to the libraries it
  # dlopens. -z undefs, placed after --no-undefined (the standard libraries close every link
  # line), lets the plugins' references to __asan_*, __ubsan_* and __sanitizer_cov_* wait for
  # load time. GCC links its shared libasan into libraries and does not need it.
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    string(APPEND CMAKE_CXX_STANDARD_LIBRARIES " -Wl,-z,undefs")
  endif()
endif()
