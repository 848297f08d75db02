// ssld::max_pool2d against at::max_pool2d, side by side in one run, on the pools of the demo's
// models (small_cnn 8x2 student and 32x3 teacher, batch 128 at 28x28) and of a ResNet stem
// (3x3, stride 2, padding 1 on 64x112x112, batch 32): the forward alone and forward + backward,
// the best of 7 rounds each, interleaved. Prints one line per shape with the ratio.
//
// usage: ssld_bench_max_pool [--threads N]   (default 2, the project's CPU budget)
// Memory is kept for reuse as in an ssld process (keep_freed_memory_for_reuse).
#include "cli/command_setup.hpp"

#include <ssld/max_pool.hpp>

#include <ATen/Parallel.h>
#include <ATen/ops/max_pool2d.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/randn_like.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>

namespace {

// Milliseconds per call of each function: the best of 7 rounds, the two interleaved.
std::pair<double, double> best_of_rounds(const std::function<void()>& a, const std::function<void()>& b, int calls) {
  auto round = [&](const std::function<void()>& work) {
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < calls; ++i) work();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / calls;
  };
  for (int i = 0; i < 3; ++i) a(), b();
  double best_a = 1e30, best_b = 1e30;
  for (int r = 0; r < 7; ++r) {
    best_a = std::min(best_a, round(a));
    best_b = std::min(best_b, round(b));
  }
  return {best_a, best_b};
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  if (argc == 3 && std::string(argv[1]) == "--threads") threads = std::stoi(argv[2]);
  else if (argc != 1) {
    std::fprintf(stderr, "usage: %s [--threads N]\n", argv[0]);
    return 2;
  }
  at::set_num_threads(threads);
  ssld::host::keep_freed_memory_for_reuse();  // as in an ssld process: the copies reuse memory
  struct Shape {
    const char* where;
    int64_t batch, channels, size, kernel, stride, padding;
  };
  const Shape shapes[] = {
      {"small_cnn 8x2 pool 1", 128, 8, 28, 2, 2, 0},   {"small_cnn 8x2 pool 2", 128, 16, 14, 2, 2, 0},
      {"small_cnn 32x3 pool 1", 128, 32, 28, 2, 2, 0}, {"small_cnn 32x3 pool 2", 128, 64, 14, 2, 2, 0},
      {"small_cnn 32x3 pool 3", 128, 128, 7, 2, 2, 0}, {"resnet stem", 32, 64, 112, 3, 2, 1},
  };
  std::printf("%d threads; ms per call, best of 7 rounds\n", threads);
  std::printf("%-22s %28s  %28s\n", "", "forward: aten  ssld  ratio", "fwd+bwd: aten  ssld  ratio");
  for (const Shape& s : shapes) {
    const at::Tensor input = at::randn({s.batch, s.channels, s.size, s.size}).relu_();  // after a ReLU, as in the models
    const at::Tensor trained = input.clone().requires_grad_();
    const std::vector<int64_t> k{s.kernel, s.kernel}, st{s.stride, s.stride}, p{s.padding, s.padding};
    const at::Tensor upstream = at::randn_like(at::max_pool2d(input, k, st, p));
    const int calls = std::max<int>(3, static_cast<int>(2e7 / input.numel()));
    double forward_aten, forward_ssld, both_aten, both_ssld;
    {
      c10::NoGradGuard no_grad;
      std::tie(forward_aten, forward_ssld) = best_of_rounds([&] { at::max_pool2d(input, k, st, p); },
                                                            [&] { ssld::max_pool2d(input, s.kernel, s.stride, s.padding); },
                                                            calls);
    }
    std::tie(both_aten, both_ssld) = best_of_rounds(
        [&] { at::max_pool2d(trained, k, st, p).backward(upstream); },
        [&] { ssld::max_pool2d(trained, s.kernel, s.stride, s.padding).backward(upstream); }, calls);
    std::printf("%-22s %10.3f %6.3f %8.2fx  %10.3f %6.3f %8.2fx\n", s.where, forward_aten, forward_ssld,
                forward_aten / forward_ssld, both_aten, both_ssld, both_aten / both_ssld);
  }
  return 0;
}
