// The teacher must stay frozen: a plugin that leaves BatchNorm in training mode or lets the
// optimizer reach its weights would silently move the targets the student learns. The guard
// fingerprints every tensor of Teacher::named_state() once and checks them on demand.
#pragma once

#include "core/tensor_digest.hpp"

#include <ssld/model.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace ssld::host {

class TeacherGuard {
 public:
  explicit TeacherGuard(const Teacher& teacher);

  // Throws ssld::Error naming the tensors that changed or hold gradients; `when` says at what
  // point of the run ("after epoch 3").
  void verify(const std::string& when) const;
  size_t tensors() const { return fingerprints_.size(); }

 private:
  const Teacher& teacher_;
  std::vector<std::pair<std::string, uint64_t>> fingerprints_;
};

}  // namespace ssld::host
