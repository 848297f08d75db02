// Data-parallel gradient averaging, as PyTorch's DistributedDataParallel does it: the student's
// parameters are grouped, last layer first, into flat buckets of about `bucket_megabytes`; a
// gradient hook copies each gradient into its bucket as autograd produces it, and a full bucket
// is all-reduced at once (buckets launch strictly in order, so every rank issues the same
// collectives in the same order) while backward goes on with earlier layers. finish() launches
// what is left, waits, and writes the averages into the parameters' .grad.
//
// Each bucket also carries one "used" count per parameter, so a parameter that no rank used in
// a step keeps its gradient as a single process would (no gradient, no weight decay on it).
#pragma once

#include "dist/process_group.hpp"

#include <ssld/model.hpp>

#include <memory>
#include <mutex>
#include <vector>

namespace ssld::host {

class GradientSync {
 public:
  // `parameters` must stay alive (the hooks are removed again by the destructor).
  GradientSync(DistContext& dist, const NamedTensors& parameters, double bucket_megabytes = 25.0);
  ~GradientSync();
  GradientSync(const GradientSync&) = delete;
  GradientSync& operator=(const GradientSync&) = delete;

  // Before backward: clears the buckets and arms the hooks. `loss_finite` (a bool scalar on the
  // gradients' device; undefined: finite) travels with the first bucket, so agreeing on a
  // skip-step costs no collective of its own.
  void prepare(const at::Tensor& loss_finite = {});
  // After backward, before clipping and the optimizer: every rank's gradients averaged.
  // Returns whether every rank's loss was finite.
  bool finish();

  // Without hooks (gradients already in .grad, e.g. from a loop that cannot use hooks, and in
  // benchmarks): prepare, copy every .grad in, finish.
  void average_existing_gradients();

  size_t buckets() const { return buckets_.size(); }
  int64_t launched_during_backward() const { return launched_during_backward_; }  // in the last step

 private:
  struct Slot {
    at::Tensor parameter;
    size_t bucket = 0;
    int64_t offset = 0;       // of the gradient in the bucket
    int64_t flag_offset = 0;  // of its "used" count
    bool ready = false;
    unsigned hook = 0;
  };
  struct Bucket {
    at::Tensor flat;  // gradients, one "used" count per slot, then the non-finite-loss count
    int64_t gradients = 0;
    size_t slots = 0, ready = 0;
    std::unique_ptr<PendingReduction> pending;
  };
  void on_gradient(size_t slot, const at::Tensor& gradient);
  void launch_in_order(bool all);

  DistContext& dist_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  size_t next_launch_ = 0;
  bool armed_ = false;
  bool in_backward_ = false;
  int64_t launched_during_backward_ = 0;
  std::mutex mutex_;  // hooks of CUDA gradients run on autograd's device thread
};

}  // namespace ssld::host
