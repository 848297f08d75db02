// The data layer's one error type: a sample that cannot be read or decoded, a batch that
// cannot be assembled, a loader that stalls. The message names the file or sample.
#pragma once

#include <stdexcept>

namespace ssld::host {

class DataError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace ssld::host
