// What the trainer does differently when it is one rank of a data-parallel run: [dist] settings,
// the start-of-run broadcast, gradient averaging with the agreed skip-step decision, the
// per-step agreement on stopping and on the end of the epoch, and BatchNorm statistics made
// equal across ranks before they are evaluated or saved. A single process never builds one.
//
//   [dist]
//   timeout_s = 1800              # a collective (or the rendezvous) waiting longer fails the run
//   bucket_mb = 25                # gradient all-reduce bucket size
//   sync_batchnorm_stats = true   # average buffers over ranks; false: take rank 0's
#pragma once

#include "config/settings_table.hpp"
#include "config/toml_value.hpp"
#include "dist/gradient_sync.hpp"
#include "dist/process_group.hpp"

#include <ssld/model.hpp>
#include <ssld/options.hpp>

#include <chrono>
#include <memory>

namespace ssld::host {

// The defaults here are [dist]'s defaults (data_parallel.cpp's table documents each key).
struct DistSettings {
  double timeout_s = 1800;
  double bucket_mb = 25;
  bool sync_batchnorm_stats = true;
  std::chrono::milliseconds timeout() const {
    return std::chrono::milliseconds(static_cast<int64_t>(timeout_s * 1000));
  }
};

// The host table schema of [dist], and its validated values (defaults where absent).
const Schema& dist_table_schema();
DistSettings read_dist_settings(const TomlValue& root);

// The process's data-parallel role for the run: set by `ssld train` under torchrun, null in a
// single process. One process is one rank, like torch.distributed's default group.
struct DataParallelRun {
  std::unique_ptr<DistContext> dist;
  DistSettings settings;
};
DataParallelRun* current_data_parallel_run();
void set_current_data_parallel_run(DataParallelRun* run);

class DataParallel {
 public:
  // `parameters`: what the optimizer steps (the student's, then any loss's), whose gradients are
  // averaged over ranks.
  DataParallel(DistContext& dist, const DistSettings& settings, NamedTensors parameters);

  DistContext& dist() { return dist_; }
  bool is_main() const { return dist_.is_main(); }
  int64_t world_size() const { return dist_.world_size(); }

  // Rank 0's tensors to every rank (parameters and buffers at the start, after a fresh init or a resume).
  void broadcast_state(const NamedTensors& state);
  // Fails (on every rank) unless all ranks stand at rank 0's (epoch, step): a rank that could
  // not read the checkpoint (the run folder must be visible to every rank).
  void check_same_position(int64_t epoch, int64_t step);

  // Around backward: every rank runs backward, even on a non-finite loss of its own, so the
  // collectives stay in step; after_backward() returns whether every rank's loss was finite and
  // leaves the averaged gradients in .grad (identical on all ranks, so the gradient-finite and
  // clipping decisions that follow agree by themselves).
  // `loss_finite`: a bool scalar on the device (no host read).
  void before_backward(const at::Tensor& loss_finite) { gradients_->prepare(loss_finite); }
  bool after_backward() { return gradients_->finish(); }

  // After each step: true when any rank was asked to stop; throws when the ranks disagree on
  // whether the epoch ends here (unequal shards).
  bool agree_after_step(bool stop_requested, bool epoch_ends, int64_t epoch, int64_t step);

  // Before evaluation and checkpoints: BatchNorm statistics (`buffers`, and the EMA's copies of
  // them in `ema`, matched by name) equal on all ranks.
  void sync_buffers(const NamedTensors& buffers, const NamedTensors& ema);

 private:
  DistContext& dist_;
  DistSettings settings_;
  std::unique_ptr<GradientSync> gradients_;
};

}  // namespace ssld::host
