// Where a teacher's outputs come from, for every command that runs a teacher: `ssld train`
// (the step and the teacher's accuracy), `ssld cache-teacher` and `ssld mine`. The teacher sits
// on its device, with its convolution weights in the layout of the batches it is given; it runs
// without gradients and outside autocast (its own precision option governs it), or its soft
// labels come from the teacher cache. One path, so a store filled ahead holds the bytes a
// training run computes, and no command sees another teacher than the others.
#pragma once

#include "data/data_config.hpp"
#include "eval/evaluation.hpp"

#include <ssld/model.hpp>

#include <string>
#include <vector>

namespace ssld::host {

class TeacherCache;
class DistContext;

// Where a batch sits in the run: the teacher cache's key for its soft labels.
struct StepPosition {
  int64_t epoch = -1;  // -1: unknown (benchmarks); the teacher then always runs
  int64_t step = -1;
};

class TeacherSource {
 public:
  // Moves `teacher` to `device`; with `channels_last` its 4-d tensors become NHWC, and the
  // images it is given are made NHWC too. `cache` (may be null) outlives the source.
  TeacherSource(Teacher& teacher, TeacherCache* cache, c10::Device device, bool channels_last);

  Teacher& teacher() const { return teacher_; }
  TeacherCache* cache() const { return cache_; }

  // `images` in the teacher's layout (unchanged when it is already in it).
  at::Tensor in_layout(const at::Tensor& images) const;

  // The teacher's outputs for a batch of images on the device, with the named `features`.
  ModelOutput forward(const at::Tensor& images, const std::vector<std::string>& features = {}) const;

  // The batch's soft labels: read from (or recorded in) the teacher cache when there is one and
  // `position` is known (logits only), otherwise forward().
  ModelOutput outputs(const at::Tensor& images, const at::Tensor& ids, StepPosition position,
                      const std::vector<std::string>& features = {}) const;

  // The teacher's accuracy on a validation pipeline: the one stored beside the cache key when
  // there is one, otherwise evaluated (over every rank's shard with `dist`) and stored there.
  struct ValidationAccuracy {
    Accuracy accuracy;
    bool from_cache = false;
  };
  ValidationAccuracy accuracy(const DataPipeline& val, uint64_t seed, DistContext* dist = nullptr) const;

 private:
  Teacher& teacher_;
  TeacherCache* cache_;
  c10::Device device_;
  bool channels_last_;
};

}  // namespace ssld::host
