#include "dist/process_group.hpp"

#include <ssld/error.hpp>

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/version.h>
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <cstdio>
#include <cstdlib>
#include <map>

namespace ssld::host {

namespace {

// libtorch 2.x split ProcessGroup into a dispatching front and per-device Backends; the
// Gloo and NCCL classes derive from the latter there.
#if TORCH_VERSION_MAJOR >= 2
using BackendBase = c10d::Backend;
#else
using BackendBase = c10d::ProcessGroup;
#endif

std::string seconds_text(std::chrono::milliseconds timeout) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g", static_cast<double>(timeout.count()) / 1000.0);
  return text;
}

[[noreturn]] void fail(const DistEnv& env, std::chrono::milliseconds timeout, const std::string& what,
                       const std::string& cause) {
  throw Error("[dist] rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) + ": " + what +
              " failed: " + cause + ". Another rank probably died, stopped or is stuck (look at its output), or it took "
              "longer than [dist] timeout_s = " + seconds_text(timeout) + " s");
}

// c10d's messages without the C++ stack trace c10::Error appends.
std::string message_of(const std::exception& error) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&error)) return c10_error->what_without_backtrace();
  return error.what();
}

bool is_loopback(const std::string& address) {
  return address == "localhost" || address.rfind("127.", 0) == 0 || address == "::1";
}

// Gloo's network device: GLOO_SOCKET_IFNAME when set (as in PyTorch), loopback when the master
// is on this machine's loopback (one node), otherwise the address this host's name resolves to.
std::shared_ptr<::gloo::transport::Device> gloo_device(const DistEnv& env) {
  if (const char* interface = std::getenv("GLOO_SOCKET_IFNAME"); interface && *interface)
    return c10d::ProcessGroupGloo::createDeviceForInterface(interface);
  if (is_loopback(env.master_addr)) return c10d::ProcessGroupGloo::createDeviceForHostname(env.master_addr);
  return c10d::ProcessGroupGloo::createDefaultDevice();
}

class PendingWork : public PendingReduction {
 public:
  PendingWork(c10::intrusive_ptr<c10d::Work> work, const DistEnv& env, std::chrono::milliseconds timeout)
      : work_(std::move(work)), env_(env), timeout_(timeout) {}
  void wait() override {
    if (!work_) return;
    try {
      work_->wait(timeout_);
    } catch (const std::exception& error) {
      work_.reset();
      fail(env_, timeout_, "an all-reduce", message_of(error));
    }
    work_.reset();
  }

 private:
  c10::intrusive_ptr<c10d::Work> work_;
  DistEnv env_;
  std::chrono::milliseconds timeout_;
};

class C10dContext : public DistContext {
 public:
  C10dContext(const DistEnv& env, std::chrono::milliseconds timeout, std::string backend, c10::Device device,
              c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<BackendBase> group)
      : DistContext(env, timeout, std::move(backend), device), store_(std::move(store)), group_(std::move(group)) {}

  void broadcast(const std::vector<at::Tensor>& tensors, int64_t root) override {
    if (world_size() == 1) return;
    // One flat buffer per dtype: a few collectives instead of one per tensor.
    std::map<at::ScalarType, std::vector<at::Tensor>> by_dtype;
    for (const auto& tensor : tensors)
      if (tensor.defined() && tensor.numel() > 0) by_dtype[tensor.scalar_type()].push_back(tensor);
    for (auto& [dtype, group] : by_dtype) {
      std::vector<at::Tensor> flat_parts;
      for (const auto& tensor : group) flat_parts.push_back(tensor.detach().reshape({-1}).to(device_));
      std::vector<at::Tensor> flat = {at::cat(flat_parts)};
      c10d::BroadcastOptions options;
      options.rootRank = root;
      options.timeout = timeout_;
      run("a broadcast", [&] { return group_->broadcast(flat, options); });
      int64_t offset = 0;
      at::NoGradGuard no_grad;
      for (auto& tensor : group) {
        const int64_t n = tensor.numel();
        tensor.detach().copy_(flat[0].narrow(0, offset, n).view(tensor.sizes()));
        offset += n;
      }
    }
  }

  std::unique_ptr<PendingReduction> all_reduce_sum_async(const at::Tensor& tensor) override {
    if (world_size() == 1) return std::make_unique<PendingWork>(c10::intrusive_ptr<c10d::Work>(), env_, timeout_);
    std::vector<at::Tensor> tensors = {tensor};
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp::SUM;
    options.timeout = timeout_;
    c10::intrusive_ptr<c10d::Work> work;
    try {
      work = group_->allreduce(tensors, options);
    } catch (const std::exception& error) {
      fail(env_, timeout_, "an all-reduce", message_of(error));
    }
    return std::make_unique<PendingWork>(std::move(work), env_, timeout_);
  }

  void barrier() override {
    if (world_size() == 1) return;
    c10d::BarrierOptions options;
    options.timeout = timeout_;
    run("a barrier", [&] { return group_->barrier(options); });
  }

 private:
  template <class Launch>
  void run(const std::string& what, Launch&& launch) {
    try {
      launch()->wait(timeout_);
    } catch (const std::exception& error) {
      fail(env_, timeout_, what, message_of(error));
    }
  }

  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<BackendBase> group_;
};

}  // namespace

std::vector<int64_t> DistContext::sum(const std::vector<int64_t>& values) {
  if (world_size() == 1) return values;
  at::Tensor tensor = at::tensor(values, at::kLong).to(device_);
  all_reduce_sum(tensor);
  tensor = tensor.cpu();
  return std::vector<int64_t>(tensor.data_ptr<int64_t>(), tensor.data_ptr<int64_t>() + tensor.numel());
}

std::unique_ptr<DistContext> DistContext::connect(const DistEnv& env, c10::Device device,
                                                  std::chrono::milliseconds timeout) {
  const std::string where = env.master_addr + ":" + std::to_string(env.master_port);
  c10::intrusive_ptr<c10d::Store> store;
  try {
    c10d::TCPStoreOptions options;
    options.port = static_cast<uint16_t>(env.master_port);
    options.isServer = env.rank == 0;
    options.numWorkers = static_cast<size_t>(env.world_size);
    options.waitWorkers = true;
    options.timeout = timeout;
    store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
  } catch (const std::exception& error) {
    throw Error("[dist] rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) +
                ": rendezvous at MASTER_ADDR:MASTER_PORT = " + where + " failed within [dist] timeout_s = " +
                seconds_text(timeout) + " s: " + message_of(error) +
                ". Every rank must start with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE, rank 0 must be able "
                "to listen on that port, and all WORLD_SIZE ranks must start");
  }
  // A prefix keeps our keys apart from anything else that shares the store.
  auto prefixed = c10::make_intrusive<c10d::PrefixStore>("ssld", store);
  c10::intrusive_ptr<BackendBase> group;
  std::string backend;
  c10::Device collective_device(c10::kCPU);
  try {
#ifdef USE_C10D_NCCL
    if (device.is_cuda()) {
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = timeout;
      group = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, static_cast<int>(env.rank),
                                                          static_cast<int>(env.world_size), options);
      backend = "nccl";
      collective_device = device;
    }
#endif
    if (!group) {
      auto options = c10d::ProcessGroupGloo::Options::create(timeout);
      options->devices.push_back(gloo_device(env));
      group = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, static_cast<int>(env.rank),
                                                          static_cast<int>(env.world_size), options);
      backend = "gloo";
    }
  } catch (const std::exception& error) {
    throw Error("[dist] rank " + std::to_string(env.rank) + " of " + std::to_string(env.world_size) +
                ": creating the process group (rendezvous " + where + ") failed: " + message_of(error) +
                ". Not every rank joined within [dist] timeout_s = " + seconds_text(timeout) +
                " s, or the ranks cannot reach each other (set GLOO_SOCKET_IFNAME to the interface to use)");
  }
  return std::unique_ptr<DistContext>(new C10dContext(env, timeout, backend, collective_device, store, group));
}

}  // namespace ssld::host
