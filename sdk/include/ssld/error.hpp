// The one error type a plugin throws for a user's mistake (a bad option value, a missing file).
// The SDK's registration wrappers catch it, and any other std::exception, inside the plugin and
// hand the host a message prefixed with the component's kind and name.
#pragma once

#include <stdexcept>
#include <string>

namespace ssld {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace ssld
