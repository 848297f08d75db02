// Test plugins whose handshake is wrong in exactly one way, selected by one compile
// definition each (see tests/plugins/CMakeLists.txt). They stand in for plugins built against
// another SDK or another libtorch, which the host must refuse before calling any C++ code.
#include <ssld/plugin.hpp>

namespace {
ssld_plugin_info broken_info() {
  ssld_plugin_info info = ssld::detail::make_plugin_info(SSLD_TEST_PLUGIN_NAME, "9.9.9");
#if defined(BREAK_ABI_MAJOR)
  info.abi_major = SSLD_ABI_MAJOR + 1;
#elif defined(BREAK_ABI_MINOR)
  info.abi_minor = SSLD_ABI_MINOR + 1;
#elif defined(BREAK_FINGERPRINT)
  std::snprintf(info.fingerprint.torch_version, sizeof(info.fingerprint.torch_version), "0.4.1");
#endif
  return info;
}
}  // namespace

SSLD_PLUGIN_EXPORT const ssld_plugin_info* ssld_plugin_info_v1(void) {
  static const ssld_plugin_info info = broken_info();
  return &info;
}

#if !defined(BREAK_NO_REGISTER)
SSLD_PLUGIN_EXPORT int32_t ssld_plugin_register_v1(void*, char*, uint32_t) { return 0; }
#endif
