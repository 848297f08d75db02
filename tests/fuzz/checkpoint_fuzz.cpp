// A training checkpoint (checkpoints/last.safetensors) as `ssld train --resume` reads it:
// CheckpointStore::read (the safetensors reader, then every typed metadata field), then the
// loss scaler's state. Seeds: checkpoints shaped as CheckpointStore::write writes them.
#include "fuzz_support.hpp"
#include "tensor_checks.hpp"
#include "train/checkpoint_store.hpp"
#include "train/mixed_precision.hpp"
#include "weights/safetensors.hpp"

#include <ATen/CPUGeneratorImpl.h>

namespace ssld::fuzz {

void write_seeds(const std::filesystem::path& folder) {
  NamedTensors tensors;
  for (const auto& [name, tensor] : sample_tensors()) tensors.emplace_back("student/" + name, tensor);
  tensors.emplace_back("ema/conv.weight", at::ones({2, 3, 2, 2}));
  tensors.emplace_back("optimizer/momentum/conv.weight", at::zeros({2, 3, 2, 2}));
  tensors.emplace_back("rng/torch_cpu", at::detail::getDefaultCPUGenerator().get_state());
  std::map<std::string, std::string> metadata = {
      {"format", "ssld-checkpoint-1"}, {"epoch", "3"},          {"next_step", "17"},
      {"global_step", "1234"},         {"best_top1", "71.250000"}, {"consecutive_nonfinite", "0"},
      {"skipped_steps", "2"},          {"images", "40000"},     {"seconds", "12.500000"},
      {"config_hash", "9f86d081884c7d65"}, {"teacher", "checkpoint:1f2e3d4c"}, {"overflow_steps", "1"},
      {"world_size", "1"}};
  host::write_safetensors((folder / "mid_epoch.safetensors").string(), tensors, metadata);
  host::LossScaler scaler(true, 65536.0, 2000);
  scaler.update(false);
  metadata.merge(scaler.state());
  metadata["next_step"] = "0";
  host::write_safetensors((folder / "fp16_epoch_end.safetensors").string(), tensors, metadata);
  // Without ssld's digests (a hand-edited or foreign file): mutations then reach the fields.
  for (const char* name : {"mid_epoch", "fp16_epoch_end"}) {
    const auto plain = folder / (std::string(name) + "_no_checksums.safetensors");
    std::filesystem::copy_file(folder / (std::string(name) + ".safetensors"), plain);
    strip_ssld_checksums(plain);
  }
}

}  // namespace ssld::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = ssld::fuzz::input_file("last.safetensors", data, size);
  ssld::fuzz::refuse_or_read([&] {
    const ssld::host::TensorFile file = ssld::host::read_safetensors(path.string());
    ssld::fuzz::touch(file.tensors);
    const ssld::host::CheckpointState state = ssld::host::checkpoint_state_of(file.metadata, path.string());
    ssld::host::LossScaler scaler(true, 65536.0, 2000);
    scaler.load_state(state.loss_scaler);
  });
  return 0;
}
