// `--dry-run`: a stage's config rewritten so that it runs anywhere in seconds, without its data
// files or teacher files: every dataset table is checked against its plugin's schema and then
// replaced by generated images (the `synthetic` dataset, same number of sources, so samplers
// keep their meaning), batches and steps are cut down, augmentation sizes are clamped to the
// generated image size, and a teacher that is not an earlier stage is checked, then replaced by
// the student's architecture with random weights. Everything else (student, losses, samplers,
// augmentations, [train]) is built and run as configured.
#pragma once

#include "components/component_factory.hpp"
#include "config/diagnostics.hpp"
#include "config/toml_value.hpp"

#include <filesystem>

namespace ssld::host {

struct DryRunSettings {
  int64_t steps = 2;        // training steps per stage
  int64_t batch_size = 4;   // per pipeline
  int64_t image_size = 64;  // generated images are this square; larger augmentation sizes shrink to it
  std::filesystem::path scratch;  // where random teacher weights are written
};

// A temporary folder for a dry run's outputs, removed with its contents when this goes away.
class ScratchFolder {
 public:
  ScratchFolder();
  ~ScratchFolder();
  ScratchFolder(const ScratchFolder&) = delete;
  ScratchFolder& operator=(const ScratchFolder&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// Rewrites `config` (one stage, [[stage]] references not yet resolved).
void make_dry_run(TomlValue& config, const std::string& stage_name, const DryRunSettings& settings,
                  const ComponentFactory& factory, Diagnostics& diagnostics);

}  // namespace ssld::host
