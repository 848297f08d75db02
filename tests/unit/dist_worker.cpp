// One rank of the c10d tests (tests/unit/dist_test.cpp starts several with the torchrun
// variables): `ssld_dist_worker SCENARIO TIMEOUT_S`. Prints what it found; exit 0 on success,
// 1 on a wrong result, 2 on an ssld::Error (its message on stderr).
#include "dist/data_parallel.hpp"
#include "dist/dist_env.hpp"
#include "dist/gradient_sync.hpp"
#include "dist/process_group.hpp"

#include <ssld/error.hpp>

#include <ATen/ATen.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/functional/loss.h>

#include <chrono>
#include <iostream>
#include <thread>

using namespace ssld::host;

namespace {

int check(bool condition, const std::string& what) {
  if (!condition) std::cerr << "FAILED: " << what << "\n";
  return condition ? 0 : 1;
}

int collectives(DistContext& dist) {
  int failures = 0;
  const double r = static_cast<double>(dist.rank());
  std::vector<at::Tensor> tensors = {at::full({3, 2}, r + 5), at::full({4}, dist.rank() + 7, at::kLong),
                                     at::full({2}, r + 9)};
  dist.broadcast(tensors, 0);
  failures += check(tensors[0].eq(5).all().item<bool>() && tensors[1].eq(7).all().item<bool>() &&
                        tensors[2].eq(9).all().item<bool>(),
                    "broadcast from rank 0");
  const auto sums = dist.sum({dist.rank(), 1});
  failures += check(sums[0] == dist.world_size() * (dist.world_size() - 1) / 2 && sums[1] == dist.world_size(), "sum");
  failures += check(dist.any(dist.rank() == 1) && !dist.all(dist.rank() == 1) && dist.all(true), "any/all");
  dist.barrier();
  std::cout << "collectives ok on rank " << dist.rank() << "\n";
  return failures;
}

// A model with an unused layer, trained on rank's half of a batch, against the whole batch in
// one process: averaged gradients equal the full-batch gradient.
struct Net {
  torch::nn::Linear unused{3, 3}, a{8, 16}, b{16, 3};
  std::vector<at::Tensor> parameters() {  // registration order; the unused layer first, so its
    std::vector<at::Tensor> all;           // bucket comes last and does not hold the others back
    for (auto* layer : {&unused, &a, &b})
      for (auto& p : (*layer)->parameters()) all.push_back(p);
    return all;
  }
  ssld::NamedTensors named() {
    ssld::NamedTensors named;
    const auto all = parameters();
    for (size_t i = 0; i < all.size(); ++i) named.emplace_back("p" + std::to_string(i), all[i]);
    return named;
  }
  at::Tensor loss(const at::Tensor& x, const at::Tensor& y) { return at::mse_loss(b(at::relu(a(x))), y); }
};

int gradients(DistContext& dist, double bucket_megabytes) {
  const int64_t per_rank = 6, world = dist.world_size();
  at::manual_seed(0);
  Net net, reference;
  at::manual_seed(1);
  const at::Tensor x = at::randn({per_rank * world, 8}), y = at::randn({per_rank * world, 3});
  {
    at::NoGradGuard no_grad;
    auto from = net.parameters(), to = reference.parameters();
    for (size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i]);
  }
  GradientSync sync(dist, net.named(), bucket_megabytes);
  int failures = 0;
  for (int step = 0; step < 3; ++step) {
    for (auto& p : net.parameters())
      if (p.grad().defined()) p.mutable_grad().zero_();
    sync.prepare();
    net.loss(x.narrow(0, dist.rank() * per_rank, per_rank), y.narrow(0, dist.rank() * per_rank, per_rank)).backward();
    sync.finish();
    for (auto& p : reference.parameters())
      if (p.grad().defined()) p.mutable_grad().zero_();
    reference.loss(x, y).backward();
    const auto got = net.parameters(), want = reference.parameters();
    for (size_t i = 0; i < got.size(); ++i) {
      if (!want[i].grad().defined()) {
        failures += check(!got[i].grad().defined(), "an unused parameter keeps no gradient");
        continue;
      }
      const double error = (got[i].grad() - want[i].grad()).abs().max().item<double>();
      failures += check(error < 1e-6, "gradient " + std::to_string(i) + " differs by " + std::to_string(error));
    }
    at::NoGradGuard no_grad;  // the same SGD step on both
    for (auto* side : {&got, &want})
      for (const auto& p : *side)
        if (p.grad().defined()) p.sub_(p.grad() * 0.1);
  }
  std::cout << "gradients ok on rank " << dist.rank() << ": " << sync.buckets() << " buckets, "
            << sync.launched_during_backward() << " launched during backward\n";
  return failures;
}

// A student that is one BatchNorm layer: its running statistics depend on the rank's data.
class BatchNormStudent : public ssld::Student {
 public:
  ssld::ModelOutput forward(const at::Tensor& images, const std::vector<std::string>&) override {
    return {norm->forward(images).mean({2, 3}), {}};
  }
  ssld::NamedTensors named_parameters() override {
    return {{"weight", norm->weight}, {"bias", norm->bias}};
  }
  ssld::NamedTensors named_buffers() override {
    return {{"running_mean", norm->running_mean}, {"running_var", norm->running_var},
            {"num_batches_tracked", norm->num_batches_tracked}};
  }
  void train(bool on) override { norm->train(on); }
  void to(c10::Device) override {}
  int64_t num_classes() const override { return 3; }
  torch::nn::BatchNorm2d norm{3};
};

// Rank r normalizes batches of its own (mean r + 1): afterwards sync_buffers() leaves the
// average of every rank's statistics (or rank 0's, without sync_batchnorm_stats) on all ranks,
// in the student and in an EMA copy; the integer counter always comes from rank 0.
int batchnorm_stats(DistContext& dist, bool average) {
  auto statistics_after = [](int64_t rank, int64_t steps) {  // what rank `rank` holds before the sync
    BatchNormStudent student;
    at::manual_seed(static_cast<uint64_t>(10 + rank));
    for (int64_t step = 0; step < steps; ++step) student.forward(at::randn({8, 3, 4, 4}) + double(rank + 1), {});
    return std::make_pair(student.norm->running_mean.clone(), student.norm->running_var.clone());
  };
  const int64_t steps_of_rank = 2 + dist.rank();  // unequal counters: only rank 0's may survive
  BatchNormStudent student;
  at::manual_seed(static_cast<uint64_t>(10 + dist.rank()));
  for (int64_t step = 0; step < steps_of_rank; ++step)
    student.forward(at::randn({8, 3, 4, 4}) + double(dist.rank() + 1), {});
  const ssld::NamedTensors ema = {{"running_mean", student.norm->running_mean.clone()}, {"weight", at::full({3}, 7.0 + dist.rank())}};

  DistSettings settings;
  settings.sync_batchnorm_stats = average;
  DataParallel parallel(dist, settings, student.named_parameters());
  parallel.sync_buffers(student.named_buffers(), ema);

  at::Tensor want_mean = at::zeros({3}), want_var = at::zeros({3});
  for (int64_t rank = 0; rank < dist.world_size(); ++rank) {
    const auto [mean, var] = statistics_after(rank, 2 + rank);
    if (!average && rank > 0) continue;
    want_mean += mean;
    want_var += var;
  }
  const double ranks = average ? double(dist.world_size()) : 1.0;
  want_mean /= ranks;
  want_var /= ranks;
  int failures = 0;
  failures += check(student.norm->running_mean.allclose(want_mean, 1e-6, 1e-6), "running_mean");
  failures += check(student.norm->running_var.allclose(want_var, 1e-6, 1e-6), "running_var");
  failures += check(ema[0].second.allclose(want_mean, 1e-6, 1e-6), "the EMA's running_mean");
  failures += check(ema[1].second.eq(7.0 + dist.rank()).all().item<bool>(), "an EMA parameter is no buffer: untouched");
  failures += check(student.norm->num_batches_tracked.item<int64_t>() == 2, "num_batches_tracked from rank 0");
  std::cout << "batchnorm_stats ok on rank " << dist.rank() << ": running_mean " << want_mean[0].item<double>() << "\n";
  return failures;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: ssld_dist_worker collectives|gradients|gradients_one_bucket|batchnorm_stats|batchnorm_stats_rank0|dies|hangs|alone TIMEOUT_S\n";
    return 64;
  }
  const std::string scenario = argv[1];
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(std::stod(argv[2]) * 1000));
  try {
    const auto env = read_dist_env();
    if (!env) throw ssld::Error("no RANK/WORLD_SIZE in the environment");
    auto dist = DistContext::connect(*env, c10::Device(c10::kCPU), timeout);
    if (scenario == "collectives") return collectives(*dist) ? 1 : 0;
    if (scenario == "gradients") return gradients(*dist, 1e-6) ? 1 : 0;  // one bucket per parameter
    if (scenario == "gradients_one_bucket") return gradients(*dist, 25) ? 1 : 0;
    if (scenario == "batchnorm_stats") return batchnorm_stats(*dist, true) ? 1 : 0;
    if (scenario == "batchnorm_stats_rank0") return batchnorm_stats(*dist, false) ? 1 : 0;
    if (scenario == "dies" || scenario == "hangs") {
      dist->barrier();
      if (dist->rank() == 1) {
        if (scenario == "dies") _exit(0);
        std::this_thread::sleep_for(std::chrono::seconds(8));
        return 0;
      }
      const auto start = std::chrono::steady_clock::now();
      try {
        for (int i = 0; i < 3; ++i) dist->all_reduce_sum(at::ones({1000}));
      } catch (const ssld::Error&) {
        std::cout << "failed after " << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() << " s\n";
        throw;
      }
      std::cerr << "rank 0: the collectives with a " << scenario << " rank returned\n";
      return 1;
    }
    std::cerr << "unknown scenario " << scenario << "\n";
    return 64;
  } catch (const ssld::Error& error) {
    std::cerr << error.what() << "\n";
    return 2;
  }
}
