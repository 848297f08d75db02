/* ssld plugin ABI, layer 1: the frozen C handshake.
 *
 * Every plugin library exports exactly two C symbols (a version script hides everything else).
 * The host calls the first before any C++ object crosses the boundary, and refuses the library
 * unless the handshake fits; only then does it call the second. Plugins never write these by
 * hand: SSLD_PLUGIN() in <ssld/plugin.hpp> defines both.
 *
 * Version rules (checked by the host, in this order):
 *   - SSLD_ABI_MAJOR must be equal. Removing or changing the behaviour of anything a plugin
 *     can see (these structs, an interface's virtual functions, a helper's layout) bumps major.
 *   - the host's SSLD_ABI_MINOR must be >= the plugin's. Adding something optional that old
 *     plugins need not know about (a new host service appended to ssld::Context or
 *     ssld::Options, a new component kind, a virtual function with a default appended to a
 *     component interface) bumps minor and resets nothing. The host never calls an appended
 *     function on a component whose plugin predates it (see the history below).
 *   - the build fingerprint must be equal: C++ objects (torch::Tensor, std::string) cross the
 *     boundary after the handshake, so libtorch's version, the libstdc++ string ABI, the
 *     compiler family and major version, and CUDA-or-not have to be the same on both sides.
 */
#ifndef SSLD_ABI_H
#define SSLD_ABI_H

#include <stddef.h>
#include <stdint.h>

#define SSLD_ABI_MAJOR 1
#define SSLD_ABI_MINOR 3
/* History:
 *   1.0  first release.
 *   1.1  ssld::Teacher::named_state() (the host verifies that teachers stay frozen).
 *   1.2  losses with state: ssld::Loss::prepare(), named_parameters(), named_buffers(), train(),
 *        to(); ssld::LossInputs::sample_ids; ssld::FeatureTap and ModuleStudent's features.
 *   1.3  ssld::Context::logger() (a log function that outlives the factory call). */

/* Names of the two entry points, as the host looks them up. */
#define SSLD_PLUGIN_INFO_SYMBOL "ssld_plugin_info_v1"
#define SSLD_PLUGIN_REGISTER_SYMBOL "ssld_plugin_register_v1"

#ifdef __cplusplus
extern "C" {
#endif

/* What the plugin was built with. Strings are NUL-terminated and NUL-padded. */
typedef struct ssld_build_fingerprint {
  char torch_version[32]; /* "1.13.0": TORCH_VERSION of the libtorch headers */
  char compiler[32];      /* "gcc 12" or "clang 14": family and major version */
  int32_t cxx11_abi;      /* _GLIBCXX_USE_CXX11_ABI (0 or 1) */
  int32_t cuda;           /* 1 when built against a CUDA-enabled libtorch */
} ssld_build_fingerprint;

/* Returned by the first entry point. Owned by the plugin, valid while it is loaded. */
typedef struct ssld_plugin_info {
  uint32_t struct_size; /* sizeof(ssld_plugin_info) as the plugin saw it */
  uint16_t abi_major;   /* SSLD_ABI_MAJOR the plugin was built with */
  uint16_t abi_minor;   /* SSLD_ABI_MINOR the plugin was built with */
  char name[64];        /* plugin library name, e.g. "small_cnn" */
  char version[32];     /* the plugin's own version, e.g. "0.1.0" */
  ssld_build_fingerprint fingerprint;
} ssld_plugin_info;

/* Entry point 1, required: returns the handshake. Must not fail, allocate or throw. */
typedef const ssld_plugin_info* (*ssld_plugin_info_fn)(void);

/* Entry point 2, required: registers the plugin's components into the host's registry
 * (an ssld::Registry*, passed as void* to keep this header C). Returns 0 on success; on failure
 * returns non-zero and writes a NUL-terminated message of at most error_size bytes to error. */
typedef int32_t (*ssld_plugin_register_fn)(void* registry, char* error, uint32_t error_size);

#ifdef __cplusplus
} /* extern "C" */

/* Frozen layout: an accidental change fails the build here, not a user's run. */
static_assert(sizeof(ssld_build_fingerprint) == 72, "ssld_build_fingerprint layout is frozen");
static_assert(offsetof(ssld_build_fingerprint, compiler) == 32, "frozen");
static_assert(offsetof(ssld_build_fingerprint, cxx11_abi) == 64, "frozen");
static_assert(offsetof(ssld_build_fingerprint, cuda) == 68, "frozen");
static_assert(sizeof(ssld_plugin_info) == 176, "ssld_plugin_info layout is frozen");
static_assert(offsetof(ssld_plugin_info, abi_major) == 4, "frozen");
static_assert(offsetof(ssld_plugin_info, abi_minor) == 6, "frozen");
static_assert(offsetof(ssld_plugin_info, name) == 8, "frozen");
static_assert(offsetof(ssld_plugin_info, version) == 72, "frozen");
static_assert(offsetof(ssld_plugin_info, fingerprint) == 104, "frozen");
#endif

#endif /* SSLD_ABI_H */
