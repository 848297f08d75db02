// What a stage's models show by name: a probe forward of two images of data.train (augmented
// and normalized as training sees them, in eval mode and without gradients, so no statistic
// moves) gives each requested feature's shape. Feature losses are prepared with these shapes
// (connectors sized to both sides), and `ssld features` prints them.
#pragma once

#include "data/data_config.hpp"

#include <ssld/features.hpp>  // shape_text
#include <ssld/loss.hpp>
#include <ssld/model.hpp>

#include <string>
#include <vector>

namespace ssld::host {

struct FeatureProbe {
  std::vector<int64_t> input;  // the probe batch's shape, [2, C, H, W]
  FeatureShapes student, teacher;
};

// `student` and `teacher` may be null (nothing probed for that side). Throws ssld::Error when
// a model refuses a name or the pipeline cannot give an image.
FeatureProbe probe_features(Student* student, Teacher* teacher, const DataPipeline& train, uint64_t seed,
                            const std::vector<std::string>& student_names,
                            const std::vector<std::string>& teacher_names);

}  // namespace ssld::host
