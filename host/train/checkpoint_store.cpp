#include "train/checkpoint_store.hpp"

#include "weights/safetensors.hpp"

#include <ssld/error.hpp>

#include <charconv>
#include <cmath>
#include <cstdlib>

namespace ssld::host {

namespace {

// Metadata read field by field: a missing or mistyped field is an error naming the file and the
// field (a damaged file, or one ssld did not write).
class CheckpointFields {
 public:
  CheckpointFields(const std::map<std::string, std::string>& metadata, std::string path)
      : metadata_(metadata), path_(std::move(path)) {}

  bool has(const std::string& key) const { return metadata_.count(key) > 0; }
  const std::string& text(const std::string& key) const {
    auto found = metadata_.find(key);
    if (found == metadata_.end()) fail(key, "is missing");
    return found->second;
  }
  int64_t integer(const std::string& key, int64_t minimum = 0) const {
    const std::string& value = text(key);
    int64_t out = 0;
    const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), out);
    if (error != std::errc() || end != value.data() + value.size() || out < minimum)
      fail(key, "is '" + value + "', not an integer >= " + std::to_string(minimum));
    return out;
  }
  double number(const std::string& key) const {
    const std::string& value = text(key);
    char* end = nullptr;
    const double out = std::strtod(value.c_str(), &end);
    if (value.empty() || end != value.c_str() + value.size() || !std::isfinite(out))
      fail(key, "is '" + value + "', not a finite number");
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw Error("'" + path_ + "' is not a usable ssld checkpoint: its field '" + key + "' " + what +
                ". Delete it and resume from an earlier copy, or start the stage over with --restart");
  }
  const std::map<std::string, std::string>& metadata_;
  std::string path_;
};

}  // namespace

CheckpointState checkpoint_state_of(const std::map<std::string, std::string>& metadata, const std::string& path) {
  const CheckpointFields field(metadata, path);
  if (!field.has("format") || field.text("format") != kCheckpointFormat)
    throw Error("'" + path + "' is not an ssld checkpoint of this version (format '" +
                (field.has("format") ? field.text("format") : std::string("none")) + "', this ssld reads '" +
                kCheckpointFormat + "'); start the stage over with --restart");
  CheckpointState state;
  if (field.has("config")) state.config_text = field.text("config");
  state.config_hash = field.text("config_hash");
  state.teacher = field.text("teacher");
  if (field.has("sampler_state")) state.sampler_state = field.text("sampler_state");
  state.epoch = field.integer("epoch");
  state.next_step = field.integer("next_step");
  state.world_size = field.has("world_size") ? field.integer("world_size", 1) : 1;
  TrainingProgress& progress = state.progress;
  progress.global_step = field.integer("global_step");
  progress.images = field.integer("images");
  progress.consecutive_nonfinite = field.integer("consecutive_nonfinite");
  progress.skipped_steps = field.integer("skipped_steps");
  if (field.has("overflow_steps")) progress.overflow_steps = field.integer("overflow_steps");
  progress.best_top1 = field.number("best_top1");
  progress.seconds = field.number("seconds");
  for (const char* key : {"loss_scale", "loss_scale_good_steps"})
    if (field.has(key)) state.loss_scaler[key] = field.text(key);
  return state;
}

CheckpointStore::CheckpointStore(std::filesystem::path stage_folder)
    : path_((stage_folder / "checkpoints" / "last.safetensors").string()) {}

void CheckpointStore::write(const CheckpointState& state, const NamedTensors& tensors) const {
  const TrainingProgress& progress = state.progress;
  std::map<std::string, std::string> metadata = {
      {"format", kCheckpointFormat},
      {"config", state.config_text},
      {"sampler_state", state.sampler_state.value_or("")},
      {"epoch", std::to_string(state.epoch)},
      {"next_step", std::to_string(state.next_step)},
      {"global_step", std::to_string(progress.global_step)},
      {"best_top1", std::to_string(progress.best_top1)},
      {"consecutive_nonfinite", std::to_string(progress.consecutive_nonfinite)},
      {"skipped_steps", std::to_string(progress.skipped_steps)},
      {"images", std::to_string(progress.images)},
      {"seconds", std::to_string(progress.seconds)},
      {"config_hash", state.config_hash},
      {"teacher", state.teacher},
      {"overflow_steps", std::to_string(progress.overflow_steps)},
      {"world_size", std::to_string(state.world_size)},
  };
  for (const auto& [key, value] : state.loss_scaler) metadata.emplace(key, value);
  write_safetensors(path_, tensors, metadata);
}

Checkpoint CheckpointStore::read() const {
  TensorFile file = read_safetensors(path_);
  return Checkpoint{checkpoint_state_of(file.metadata, path_), std::move(file.tensors)};
}

}  // namespace ssld::host
