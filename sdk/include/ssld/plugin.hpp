// The one header a plugin's entry file includes. SSLD_PLUGIN defines both entry points of the
// frozen handshake (abi.h) and opens the body of the registration function:
//
//   #include <ssld/plugin.hpp>
//   SSLD_PLUGIN("tiny_students", "1.0.0", registry) {
//     ssld::add_component<ssld::Student, TinyMlp>(registry, "tiny_mlp", "A two-layer MLP.",
//         ssld::Schema().add_int("hidden", 128, "width of the hidden layer"));
//   }
//
// Register explicitly there, never from static initializers: the host decides when a
// library's components come to exist, after it has checked the handshake.
#pragma once

#include <ssld/abi.h>
#include <ssld/fingerprint.hpp>
#include <ssld/registry.hpp>

#include <cstring>
#include <exception>

namespace ssld::detail {

inline ssld_plugin_info make_plugin_info(const char* name, const char* version) {
  ssld_plugin_info info;
  std::memset(&info, 0, sizeof(info));
  info.struct_size = sizeof(ssld_plugin_info);
  info.abi_major = SSLD_ABI_MAJOR;
  info.abi_minor = SSLD_ABI_MINOR;
  std::strncpy(info.name, name, sizeof(info.name) - 1);
  std::strncpy(info.version, version, sizeof(info.version) - 1);
  info.fingerprint = this_build_fingerprint();
  return info;
}

inline int32_t run_registration(void* registry, char* error, uint32_t error_size,
                                void (*register_components)(Registry&)) {
  auto report = [&](const char* message) {
    if (error != nullptr && error_size > 0) {
      std::strncpy(error, message, error_size - 1);
      error[error_size - 1] = '\0';
    }
    return int32_t{1};
  };
  try {
    register_components(*static_cast<Registry*>(registry));
    return 0;
  } catch (const std::exception& exception) {
    return report(exception.what());
  } catch (...) {
    return report("unknown exception (not derived from std::exception)");
  }
}

}  // namespace ssld::detail

#define SSLD_PLUGIN_EXPORT extern "C" __attribute__((visibility("default")))

#define SSLD_PLUGIN(NAME, VERSION, REGISTRY)                                                      \
  static void ssld_register_components(::ssld::Registry& REGISTRY);                               \
  SSLD_PLUGIN_EXPORT const ssld_plugin_info* ssld_plugin_info_v1(void) {                          \
    static const ssld_plugin_info info = ::ssld::detail::make_plugin_info(NAME, VERSION);        \
    return &info;                                                                                 \
  }                                                                                               \
  SSLD_PLUGIN_EXPORT int32_t ssld_plugin_register_v1(void* registry, char* error, uint32_t size) { \
    return ::ssld::detail::run_registration(registry, error, size, &ssld_register_components);    \
  }                                                                                               \
  static void ssld_register_components(::ssld::Registry& REGISTRY)
