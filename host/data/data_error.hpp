// The data layer's one error type: a sample that cannot be read or decoded, a batch that
// cannot be assembled, a loader that stalls. The message names the file or sample.
#pragma once

#include "core/errors.hpp"

namespace ssld::host {

class DataError : public HostError {
 public:
  explicit DataError(const std::string& message) : HostError(message) {}
};

}  // namespace ssld::host
