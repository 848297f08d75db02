// The build fingerprint of the code including this header: the plugin macro stamps it into
// a plugin's handshake and the host compares it with its own (see abi.h for the rules).
#pragma once

#include <ssld/abi.h>

#include <cstdio>
#include <cstring>
#include <string>

#include <torch/version.h>

namespace ssld {

inline ssld_build_fingerprint this_build_fingerprint() {
  ssld_build_fingerprint fingerprint;
  std::memset(&fingerprint, 0, sizeof(fingerprint));
  std::snprintf(fingerprint.torch_version, sizeof(fingerprint.torch_version), "%d.%d.%d",
                TORCH_VERSION_MAJOR, TORCH_VERSION_MINOR, TORCH_VERSION_PATCH);
#if defined(__clang__)
  std::snprintf(fingerprint.compiler, sizeof(fingerprint.compiler), "clang %d", __clang_major__);
#elif defined(__GNUC__)
  std::snprintf(fingerprint.compiler, sizeof(fingerprint.compiler), "gcc %d", __GNUC__);
#else
  std::snprintf(fingerprint.compiler, sizeof(fingerprint.compiler), "unknown");
#endif
#if defined(_GLIBCXX_USE_CXX11_ABI)
  fingerprint.cxx11_abi = _GLIBCXX_USE_CXX11_ABI;
#endif
  // Set by ssld::sdk's CMake usage requirements from the libtorch that find_package found.
#if defined(SSLD_TORCH_CUDA) && SSLD_TORCH_CUDA
  fingerprint.cuda = 1;
#endif
  return fingerprint;
}

// "libtorch 1.13.0, gcc 12, cxx11 abi 1, cpu": how error messages show a fingerprint.
inline std::string describe(const ssld_build_fingerprint& fingerprint) {
  auto bounded = [](const char* text, std::size_t size) { return std::string(text, strnlen(text, size)); };
  return "libtorch " + bounded(fingerprint.torch_version, sizeof(fingerprint.torch_version)) + ", " +
         bounded(fingerprint.compiler, sizeof(fingerprint.compiler)) + ", cxx11 abi " +
         std::to_string(fingerprint.cxx11_abi) + ", " + (fingerprint.cuda ? "cuda" : "cpu");
}

inline bool operator==(const ssld_build_fingerprint& a, const ssld_build_fingerprint& b) {
  return describe(a) == describe(b);
}

}  // namespace ssld
