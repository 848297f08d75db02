// The parallel, deterministic loader: a producer thread walks the sampler's steps, prepares
// each batch's samples in parallel on a oneTBB arena of `threads` threads, assembles a uint8
// NCHW batch (pinned when the device is CUDA, so the copy can be asynchronous), and keeps up
// to `prefetch` batches ready. A batch depends only on (seed, epoch, step), never on the
// number of threads or on timing.
#pragma once

#include "data/sample_pipeline.hpp"

#include <ssld/data.hpp>

#include <ATen/core/Tensor.h>

#include <tbb/task_arena.h>

#include <memory>
#include <optional>

namespace ssld::host {

struct LoaderSettings {
  int threads = 1;              // threads preparing samples (the producer is one of them)
  int prefetch = 4;             // batches kept ready ahead of the consumer
  double read_timeout_s = 120;  // longest wait for one batch before failing as stuck
  bool pin_memory = false;      // page-locked batches (CUDA runs only)
};

struct HostBatch {
  at::Tensor images;  // uint8 [N, C, H, W]
  at::Tensor labels;  // int64 [N]; -1 unlabeled
  at::Tensor ids;     // int64 [N]; Sample::id
  std::vector<SampleRef> refs;  // [N]: the sampler's reference of each row (bad images skipped are not rows)
  std::vector<std::string> origins;  // [N]: where each row's image came from (Sample::origin)
  int64_t epoch = 0;
  int64_t step = 0;
};

// One batch, assembled on the calling thread's arena: what the loader does for each step.
HostBatch assemble_batch(const SamplePipeline& samples, const std::vector<SampleRef>& refs, bool pin_memory,
                         tbb::task_arena& arena);

class Loader {
 public:
  Loader(const SamplePipeline& samples, const Sampler& sampler, LoaderSettings settings);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Starts producing the batches of `epoch` from `first_step` on (ending any epoch in flight).
  void start(int64_t epoch, int64_t first_step = 0);
  // The next batch in step order; nullopt after the epoch's last step. A worker's error is
  // rethrown here, on the consumer's thread; so is a stall longer than read_timeout_s.
  std::optional<HostBatch> next();
  // Stops producing; never blocks longer than read_timeout_s, even with a read stuck.
  void stop();

 private:
  struct State;
  const SamplePipeline& samples_;
  const Sampler& sampler_;
  LoaderSettings settings_;
  std::shared_ptr<State> state_;
};

}  // namespace ssld::host
