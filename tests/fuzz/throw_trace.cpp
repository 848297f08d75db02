// Where the exception that escaped was thrown: the abort's stack shows only the catch in
// refuse_or_read. __cxa_throw is interposed (the executable's definition wins over
// libstdc++'s, for throws from ssld, libtorch and toml11 alike) to keep the return addresses of
// the latest throw; unexpected_failure() prints them, symbolized by the sanitizer runtime. It
// replaces ASan's own (weak) __cxa_throw interceptor, so it does that one's work too: unpoison
// the stack the unwinding leaves.
#include <dlfcn.h>
#include <execinfo.h>
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>

#include <cstdio>
#include <typeinfo>

namespace {
void* last_throw[48];
int last_throw_depth = 0;
const std::type_info* last_type = nullptr;
}  // namespace

extern "C" void __cxa_throw(void* object, std::type_info* type, void (*destructor)(void*)) {
  using Throw = void (*)(void*, std::type_info*, void (*)(void*));
  static const Throw real = reinterpret_cast<Throw>(dlsym(RTLD_NEXT, "__cxa_throw"));
  last_throw_depth = backtrace(last_throw, 48);
  last_type = type;
  __asan_handle_no_return();
  real(object, type, destructor);
  __builtin_unreachable();
}

// Prints the latest throw's trace when it threw `escaped` (an earlier, caught exception's trace
// would mislead). libstdc++'s own throws (std::stoll's std::invalid_argument, vector::at's
// std::out_of_range) bind to its internal __cxa_throw and are not seen here.
extern "C" void ssld_fuzz_print_last_throw(const std::type_info& escaped) {
  if (last_type == nullptr || *last_type != escaped || last_throw_depth < 2) {
    std::fprintf(stderr, "== ssld fuzz: no trace of where it was thrown (from inside libstdc++?); "
                         "run the input under gdb -ex 'catch throw' to see it\n");
    return;
  }
  std::fprintf(stderr, "== ssld fuzz: thrown at\n");
  for (int i = 1; i < last_throw_depth; ++i) {
    char frame[1024];
    __sanitizer_symbolize_pc(reinterpret_cast<char*>(last_throw[i]) - 1, "%F %L", frame, sizeof(frame));
    std::fprintf(stderr, "    #%d %s\n", i - 1, frame);
  }
}
