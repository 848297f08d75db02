// The plugin layer's one error type: a library that cannot be loaded, is refused by the
// handshake, fails to register, or clashes with another. The message names the file.
#pragma once

#include <stdexcept>

namespace ssld::host {

class PluginError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace ssld::host
