// A stage's checkpoint, <stage folder>/checkpoints/last.safetensors: the student, EMA,
// optimizer and generator tensors beside typed metadata (position, progress, the config and
// teacher it belongs to, sampler and loss-scaler state). Written atomically with ssld's
// checksums (weights/safetensors.hpp); every field is checked on reading, and a missing or
// mistyped one is an error naming the file and the field.
#pragma once

#include <ssld/model.hpp>

#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace ssld::host {

inline constexpr const char* kCheckpointFormat = "ssld-checkpoint-1";

// What training has done so far: saved in every checkpoint, restored on resume.
struct TrainingProgress {
  int64_t global_step = 0, images = 0;  // images over all ranks
  int64_t consecutive_nonfinite = 0, skipped_steps = 0, overflow_steps = 0;
  double best_top1 = -1;  // -1: not evaluated yet
  double seconds = 0;     // training time
};

struct CheckpointState {
  std::string config_text;  // the stage's config less its result-neutral keys
  std::string config_hash;
  std::string teacher;      // the teacher's identity; empty without one
  std::optional<std::string> sampler_state;  // absent in checkpoints of samplers without state
  int64_t epoch = 0, next_step = 0;  // where training continues (next_step 0: an epoch's start)
  int64_t world_size = 1;            // processes of the run that wrote it
  TrainingProgress progress;
  std::map<std::string, std::string> loss_scaler;  // LossScaler::state()
};

struct Checkpoint {
  CheckpointState state;
  NamedTensors tensors;  // in file order: "student/...", "ema/...", "optimizer/...", "rng/torch_cpu"
};

class CheckpointStore {
 public:
  explicit CheckpointStore(std::filesystem::path stage_folder);

  const std::string& path() const { return path_; }
  bool exists() const { return std::filesystem::exists(path_); }
  void write(const CheckpointState& state, const NamedTensors& tensors) const;
  // Throws ssld::Error naming the file and the field for anything write() would not have written.
  Checkpoint read() const;

 private:
  std::string path_;
};

// The metadata of a checkpoint read back into its fields (for read() and the fuzz target).
CheckpointState checkpoint_state_of(const std::map<std::string, std::string>& metadata, const std::string& path);

}  // namespace ssld::host
