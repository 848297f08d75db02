// Stages: one config can run several trainings in order (train a teacher, a baseline, distill,
// fine-tune). Each [[stage]] table is a partial config merged over the rest of the file; a
// later stage refers to an earlier one by name:
//   [stage.teacher]  stage = "teacher", which = "best"   -> a `checkpoint` teacher made of that
//                    stage's student architecture and its best (or last) weights;
//   [stage.student]  init_from = "ssld", init_which = "best" -> start from those weights.
// A config without [[stage]] is one stage named "main".
#pragma once

#include "config/diagnostics.hpp"
#include "config/toml_value.hpp"

#include <filesystem>
#include <string>
#include <vector>

namespace ssld::host {

struct Stage {
  std::string name;
  TomlValue config;  // the whole config of this stage, without [[stage]]
};

std::vector<Stage> expand_stages(const TomlValue& root, Diagnostics& diagnostics);

// The weights file a reference names: <folder of stage>/best.safetensors or student.safetensors.
std::filesystem::path stage_weights(const std::filesystem::path& stage_folder, const std::string& which);

// Rewrites `stage.config`'s references to earlier stages (see above) into plain options:
// `stages` are the stages before it, `folders` their output folders.
void resolve_stage_references(Stage& stage, const std::vector<Stage>& earlier,
                              const std::vector<std::filesystem::path>& folders, Diagnostics& diagnostics);

}  // namespace ssld::host
