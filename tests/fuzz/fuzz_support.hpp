// What every fuzz target shares: a private scratch folder for the files the readers open (they
// take paths), the rule that tells a finding from a refusal, and the seed-writing mode.
//
// The rule: a reader given damaged bytes must refuse them with one of ssld's typed errors
// (ssld::Error, ConfigError, DataError, PluginError: a user mistake, exit code 2). Anything else
// that escapes (std::out_of_range, nlohmann::json::type_error, c10::Error, std::bad_alloc...)
// would end `ssld` with exit code 1, "unexpected failure", which is a bug in ssld: the target
// prints it and aborts, and libFuzzer keeps the input. Sanitizer reports, timeouts and
// out-of-memory stops are findings as well.
//
// Seeds: with SSLD_FUZZ_WRITE_SEEDS=<folder> in the environment, a target writes valid inputs
// made with ssld's own writers into <folder> and exits (scripts/fuzz.sh does this before each run).
#pragma once

#include "config/diagnostics.hpp"
#include "core/errors.hpp"

#include <ssld/error.hpp>

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cxxabi.h>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>
#include <typeinfo>

namespace ssld::fuzz {

// Each target defines this: writes its seed inputs into `folder` (which exists).
void write_seeds(const std::filesystem::path& folder);

// A folder of this process's own under $TMPDIR, removed at exit; libFuzzer's forks and jobs
// (-fork, -jobs) each get their own.
inline const std::filesystem::path& scratch() {
  static const std::filesystem::path folder = [] {
    std::string pattern = (std::filesystem::temp_directory_path() / "ssld-fuzz-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      std::perror("ssld fuzz: mkdtemp");
      std::abort();
    }
    std::filesystem::path made(pattern);
    static struct Remover {
      std::filesystem::path path;
      ~Remover() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
      }
    } remover{made};
    return made;
  }();
  return folder;
}

inline void write_bytes(const std::filesystem::path& path, const void* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!out) {
    std::fprintf(stderr, "ssld fuzz: cannot write %s\n", path.c_str());
    std::abort();
  }
}

inline void write_text(const std::filesystem::path& path, const std::string& text) {
  write_bytes(path, text.data(), text.size());
}

// Writes the fuzz input to `name` in the scratch folder and returns its path.
inline std::filesystem::path input_file(const std::string& name, const uint8_t* data, size_t size) {
  const auto path = scratch() / name;
  write_bytes(path, data, size);
  return path;
}

}  // namespace ssld::fuzz

extern "C" void ssld_fuzz_print_last_throw(const std::type_info& escaped);  // throw_trace.cpp

namespace ssld::fuzz {

[[noreturn]] inline void unexpected_failure(const std::exception& error) {
  int status = 0;
  char* name = abi::__cxa_demangle(typeid(error).name(), nullptr, nullptr, &status);
  std::fprintf(stderr, "\n== ssld fuzz: unexpected failure (exit 1 in ssld): %s: %s\n",
               status == 0 && name ? name : typeid(error).name(), error.what());
  std::free(name);
  ssld_fuzz_print_last_throw(typeid(error));
  std::abort();
}

// SSLD_FUZZ_VERBOSE=1 prints each refusal, to see why a replayed input is turned away.
inline void refused(const std::exception& error) {
  static const bool verbose = std::getenv("SSLD_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "ssld fuzz: refused: %s\n", error.what());
}

// Runs `read`; a typed ssld error is the expected refusal of bad bytes, anything else aborts.
template <class Read>
void refuse_or_read(Read&& read) {
  try {
    read();
  } catch (const ssld::Error& error) {
    refused(error);
  } catch (const host::ConfigError& error) {
    refused(error);
  } catch (const host::DataError& error) {
    refused(error);
  } catch (const host::PluginError& error) {
    refused(error);
  } catch (const std::exception& error) {
    unexpected_failure(error);
  }
}

}  // namespace ssld::fuzz

// The seed mode, run before libFuzzer looks at its arguments.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* folder = std::getenv("SSLD_FUZZ_WRITE_SEEDS")) {
    try {
      std::filesystem::create_directories(folder);
      ssld::fuzz::write_seeds(folder);
    } catch (const std::exception& error) {
      std::fprintf(stderr, "ssld fuzz: writing seeds into %s failed: %s\n", folder, error.what());
      std::exit(1);
    }
    std::exit(0);
  }
  return 0;
}
