// The plugin layer's one error type: a library that cannot be loaded, is refused by the
// handshake, fails to register, or clashes with another. The message names the file.
#pragma once

#include "core/errors.hpp"

namespace ssld::host {

class PluginError : public HostError {
 public:
  explicit PluginError(const std::string& message) : HostError(message) {}
};

}  // namespace ssld::host
