// The collectives a data-parallel run needs, over PyTorch's own c10d: a TCPStore rendezvous at
// MASTER_ADDR:MASTER_PORT, then a Gloo process group (CPU tensors) or, with a CUDA libtorch
// built with NCCL, an NCCL one (CUDA tensors). Every collective waits at most `timeout`: a rank
// that died or hangs makes the others fail with a message that says so, instead of hanging.
// The c10d headers stay in process_group.cpp; the rest of the host sees only this facade.
#pragma once

#include "dist/dist_env.hpp"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace ssld::host {

// An all-reduce in flight: wait() before reading its tensor.
class PendingReduction {
 public:
  virtual ~PendingReduction() = default;
  virtual void wait() = 0;  // throws ssld::Error when the collective failed or timed out
};

class DistContext {
 public:
  // Rendezvous and process group. `device` is the training device: CUDA -> NCCL (when this
  // libtorch has it), otherwise Gloo. Throws ssld::Error naming the address and the timeout
  // when not every rank joins in time.
  static std::unique_ptr<DistContext> connect(const DistEnv& env, c10::Device device, std::chrono::milliseconds timeout);
  virtual ~DistContext() = default;

  int64_t rank() const { return env_.rank; }
  int64_t world_size() const { return env_.world_size; }
  int64_t local_rank() const { return env_.local_rank; }
  bool is_main() const { return env_.rank == 0; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  const std::string& backend() const { return backend_; }
  // Where collective tensors live: the CPU for Gloo, the GPU for NCCL.
  c10::Device device() const { return device_; }

  // Every tensor takes `root`'s values, in place (any devices and dtypes; flattened per dtype).
  virtual void broadcast(const std::vector<at::Tensor>& tensors, int64_t root = 0) = 0;
  // Element-wise sum over ranks, in place; `tensor` must be contiguous on device().
  virtual std::unique_ptr<PendingReduction> all_reduce_sum_async(const at::Tensor& tensor) = 0;
  void all_reduce_sum(const at::Tensor& tensor) { all_reduce_sum_async(tensor)->wait(); }
  virtual void barrier() = 0;

  // Small agreements on the host: sums of integers (flags, counts) across ranks.
  std::vector<int64_t> sum(const std::vector<int64_t>& values);
  bool any(bool flag) { return sum({flag ? 1 : 0})[0] > 0; }
  bool all(bool flag) { return sum({flag ? 1 : 0})[0] == world_size(); }

 protected:
  DistContext(DistEnv env, std::chrono::milliseconds timeout, std::string backend, c10::Device device)
      : env_(std::move(env)), timeout_(timeout), backend_(std::move(backend)), device_(device) {}

  DistEnv env_;
  std::chrono::milliseconds timeout_;
  std::string backend_;
  c10::Device device_;
};

}  // namespace ssld::host
