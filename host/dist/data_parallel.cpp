#include "dist/data_parallel.hpp"

#include "config/toml_options.hpp"

#include <ssld/error.hpp>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <map>
#include <set>

namespace ssld::host {

namespace {
DataParallelRun* current_run = nullptr;
}

namespace {
using T = DistSettings;
const SettingsTable<T>& dist_table() {
  static const SettingsTable<T> table =
      SettingsTable<T>()
          .add("timeout_s", &T::timeout_s,
               "multi-process runs: a rendezvous or collective waiting longer than this fails the run (a dead or "
               "stuck rank)")
          .add("bucket_mb", &T::bucket_mb, "size of the flattened gradient buckets all-reduced during backward")
          .add("sync_batchnorm_stats", &T::sync_batchnorm_stats,
               "before evaluation and checkpoints, average BatchNorm statistics (and other floating-point "
               "buffers) over ranks; false: every rank takes rank 0's");
  return table;
}
}  // namespace

const Schema& dist_table_schema() { return dist_table().schema(); }

DistSettings read_dist_settings(const TomlValue& root) {
  const TomlValue table = root.contains("dist") && root.at("dist").is_table() ? root.at("dist") : TomlValue(TomlTable{});
  const TomlOptions options(table, std::make_shared<const Schema>(dist_table_schema()), "[dist]");
  const DistSettings settings = dist_table().read(options);
  if (settings.timeout_s <= 0 || settings.bucket_mb <= 0)
    throw Error("[dist] timeout_s and bucket_mb must be positive");
  return settings;
}

DataParallelRun* current_data_parallel_run() { return current_run; }
void set_current_data_parallel_run(DataParallelRun* run) { current_run = run; }

DataParallel::DataParallel(DistContext& dist, const DistSettings& settings, NamedTensors parameters)
    : dist_(dist), settings_(settings),
      gradients_(std::make_unique<GradientSync>(dist, std::move(parameters), settings.bucket_mb)) {}

void DataParallel::broadcast_state(const NamedTensors& state) {
  std::vector<at::Tensor> tensors;
  for (const auto& [name, tensor] : state) tensors.push_back(tensor);
  c10::NoGradGuard no_grad;
  dist_.broadcast(tensors, 0);
}

void DataParallel::check_same_position(int64_t epoch, int64_t step) {
  at::Tensor position = at::tensor(std::vector<int64_t>{epoch, step}, at::kLong);
  dist_.broadcast({position}, 0);
  const bool same = position[0].item<int64_t>() == epoch && position[1].item<int64_t>() == step;
  if (!dist_.all(same))
    throw Error("[dist] the ranks start from different positions (rank 0 at epoch " +
                std::to_string(position[0].item<int64_t>() + 1) + " step " + std::to_string(position[1].item<int64_t>()) +
                ", rank " + std::to_string(dist_.rank()) + " at epoch " + std::to_string(epoch + 1) + " step " +
                std::to_string(step) + "): every rank reads the checkpoint from the run folder, so it must be on a "
                "filesystem that all ranks see");
}

bool DataParallel::agree_after_step(bool stop_requested, bool epoch_ends, int64_t epoch, int64_t step) {
  const auto sums = dist_.sum({stop_requested ? 1 : 0, epoch_ends ? 1 : 0});
  if (sums[1] != 0 && sums[1] != world_size())
    throw Error("[dist] the ranks disagree on the end of epoch " + std::to_string(epoch + 1) + " at step " +
                std::to_string(step) + " (" + std::to_string(sums[1]) + " of " + std::to_string(world_size()) +
                " ranks end it): their shards have different step counts; use one of the standard samplers");
  return sums[0] > 0;
}

void DataParallel::sync_buffers(const NamedTensors& buffers, const NamedTensors& ema) {
  std::set<std::string> buffer_names;
  std::vector<at::Tensor> averaged, from_rank0;
  auto add = [&](const at::Tensor& tensor) {
    (settings_.sync_batchnorm_stats && tensor.is_floating_point() ? averaged : from_rank0).push_back(tensor);
  };
  for (const auto& [name, tensor] : buffers) {
    buffer_names.insert(name);
    add(tensor);
  }
  for (const auto& [name, tensor] : ema)
    if (buffer_names.count(name)) add(tensor);
  c10::NoGradGuard no_grad;
  if (!from_rank0.empty()) dist_.broadcast(from_rank0, 0);
  if (averaged.empty()) return;
  // One flat all-reduce per dtype and device.
  std::map<std::pair<at::ScalarType, std::string>, std::vector<at::Tensor>> groups;
  for (const auto& tensor : averaged) groups[{tensor.scalar_type(), tensor.device().str()}].push_back(tensor);
  for (auto& [key, group] : groups) {
    std::vector<at::Tensor> parts;
    for (const auto& tensor : group) parts.push_back(tensor.reshape({-1}).to(dist_.device()));
    at::Tensor flat = at::cat(parts);
    dist_.all_reduce_sum(flat);
    flat.div_(static_cast<double>(world_size()));
    int64_t offset = 0;
    for (auto& tensor : group) {
      tensor.copy_(flat.narrow(0, offset, tensor.numel()).view(tensor.sizes()));
      offset += tensor.numel();
    }
  }
}

}  // namespace ssld::host
