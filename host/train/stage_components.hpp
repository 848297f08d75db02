// What one training stage is made of, as stage/assembly.hpp builds it from the config: the
// student, the teacher (and its soft-label cache), the weighted losses, the data and [train].
#pragma once

#include "data/data_config.hpp"
#include "train/train_settings.hpp"

#include <ssld/loss.hpp>
#include <ssld/model.hpp>

#include <memory>
#include <string>
#include <vector>

namespace ssld::host {

struct WeightedLoss {
  std::unique_ptr<Loss> loss;
  std::string name;  // "ssld", or "kl#1" when a type repeats
  double weight = 1.0;
  double lr_scale = 1.0;  // of the loss's own parameters
};

class TeacherCache;

struct StageComponents {
  StageComponents();
  ~StageComponents();
  StageComponents(StageComponents&&) noexcept;
  StageComponents& operator=(StageComponents&&) noexcept;

  std::unique_ptr<Student> student;
  std::unique_ptr<Teacher> teacher;             // may be null
  std::unique_ptr<TeacherCache> teacher_cache;  // [teacher_cache]; null without one
  std::vector<WeightedLoss> losses;
  std::unique_ptr<DataPipeline> train;
  std::unique_ptr<DataPipeline> val;  // may be null
  TrainSettings settings;
};

}  // namespace ssld::host
