// All-reduce cost per training step of data-parallel gradient averaging (GradientSync: 25 MB
// flattened buckets over c10d Gloo) for the gradient sizes of MobileNetV3-large (5.48M
// parameters) and ResNet50-vd (25.6M), 2 ranks on loopback. Prints numbers; asserts nothing.
//   build/bin/ssld_bench_dist_allreduce [steps]   (starts its 2 ranks itself)
#include "dist/gradient_sync.hpp"
#include "dist_launch.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <iostream>

using namespace ssld::host;

namespace {

// A model's parameters as tensors of realistic sizes: the total split into 1M-element layers.
ssld::NamedTensors fake_parameters(int64_t total) {
  ssld::NamedTensors parameters;
  for (int64_t done = 0, i = 0; done < total; ++i) {
    const int64_t n = std::min<int64_t>(1 << 20, total - done);
    at::Tensor parameter = at::zeros({n}).requires_grad_(true);
    parameter.mutable_grad() = at::randn({n});
    parameters.emplace_back("p" + std::to_string(i), parameter);
    done += n;
  }
  return parameters;
}

int rank_main(int steps) {
  const auto env = read_dist_env();
  auto dist = DistContext::connect(*env, c10::Device(c10::kCPU), std::chrono::seconds(120));
  for (const auto& [name, total] : {std::pair<std::string, int64_t>{"MobileNetV3-large", 5483032},
                                    {"ResNet50-vd", 25576264}}) {
    const auto parameters = fake_parameters(total);
    GradientSync sync(*dist, parameters, 25.0);
    sync.average_existing_gradients();  // warm-up: connections, buffers
    std::vector<double> times;
    for (int i = 0; i < steps; ++i) {
      dist->barrier();
      const auto start = std::chrono::steady_clock::now();
      sync.average_existing_gradients();
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(times.begin(), times.end());
    if (dist->is_main()) {
      const double megabytes = static_cast<double>(total) * 4 / 1e6;
      const double median = times[times.size() / 2];
      std::printf("%-18s %6.1f MB fp32 gradients, %zu buckets: median %.1f ms per step (min %.1f, max %.1f), %.2f GB/s\n",
                  name.c_str(), megabytes, sync.buckets(), median * 1e3, times.front() * 1e3, times.back() * 1e3,
                  megabytes / 1e3 / median);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 10;
  if (std::getenv("RANK")) return rank_main(steps);
  ssld::test::TempDir logs;
  std::printf("Gloo all-reduce of averaged gradients, 2 ranks on 127.0.0.1, %d steps each (bucket 25 MB)\n", steps);
  auto results = ssld::test::LaunchedRanks(argv[0], {std::to_string(steps)}, 2, logs.path()).wait(std::chrono::seconds(600));
  for (size_t r = 0; r < results.size(); ++r) {
    std::cout << results[r].out;
    if (results[r].exit_code != 0) std::cerr << "rank " << r << " failed (" << results[r].exit_code << "): " << results[r].err;
  }
  return results[0].exit_code;
}
