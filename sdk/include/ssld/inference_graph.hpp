// A teacher compiled for inference: its forward as a frozen TorchScript graph
// (torch::jit::freeze + optimize_for_inference: weights as constants, BatchNorm folded into the
// convolutions, oneDNN's fused convolution + ReLU kernels), used instead of the model as loaded
// only where its logits equal the model's within 1e-4 (and, with `optimize = "auto"`, where it
// also measured faster). The torchscript and checkpoint teachers share the option, the tolerance,
// the speed rule and the log line from here.
#pragma once

#include <ssld/component.hpp>
#include <ssld/error.hpp>
#include <ssld/host_value_reads.hpp>
#include <ssld/options.hpp>

#include <c10/core/GradMode.h>
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/script.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <tuple>

namespace ssld {

enum class InferenceOptimization { Auto, On, Off };

// `schema` plus the `optimize` option. The default is `on`, not `auto`: a choice made by timing
// can differ between two processes on a loaded machine, and the soft labels must be the same
// bits in every run of a sweep (teacher caches, resume); `on` decides by the tolerance alone.
inline Schema with_inference_optimization(Schema schema) {
  return schema.add_string("optimize", "on",
                           "a frozen inference graph (BatchNorm folded into convolutions, fused kernels) on the CPU in "
                           "fp32: on wherever its logits are within 1e-4, auto only where it also measured faster "
                           "(a timing-dependent choice), off never",
                           {"on", "auto", "off"});
}

inline InferenceOptimization inference_optimization(const Options& options) {
  const std::string mode = options.get_string("optimize");
  return mode == "on" ? InferenceOptimization::On : mode == "off" ? InferenceOptimization::Off : InferenceOptimization::Auto;
}

// A model's forward: a batch to its logits.
using LogitsFunction = std::function<at::Tensor(const at::Tensor&)>;


// Records `forward` on `example` with libtorch's tracer (Python's torch.jit.trace) and returns
// the recording frozen and optimized for inference; `traced_logits` receives the logits the
// recorded run computed. The weights must not require gradients (they become constants). A
// trace keeps only what this batch ran: host-side branches and sizes read as integers are
// fixed, so the graph is for batches of this shape and is checked against the model on one. A
// forward that reads tensor values on the host (item(), if on a tensor) may branch on the data,
// which no check on one batch can rule out: it throws ssld::Error instead of returning a graph.
inline torch::jit::Module trace_for_inference(const LogitsFunction& forward, const at::Tensor& example,
                                              at::Tensor& traced_logits) {
  c10::NoGradGuard no_grad;
  auto traced = [&](torch::jit::Stack inputs) -> torch::jit::Stack {
    return {forward(inputs.at(0).toTensor())};
  };
  // Traced as a method of an empty module: the tracer gives the graph its `self` input itself
  // (as torch.jit.trace does), and the weights it meets become constants.
  torch::jit::Module module("__torch__.ssld.InferenceGraph");
  int64_t host_reads = 0;
  torch::jit::Stack outputs;
  std::shared_ptr<torch::jit::tracer::TracingState> state;
  {
    const HostValueReadCounter counter;
    std::tie(state, outputs) = torch::jit::tracer::trace({example}, traced, [](const at::Tensor&) { return std::string(); },
                                                         /*strict=*/true, /*force_outplace=*/false, &module);
    host_reads = counter.count();
  }
  if (host_reads > 0)
    throw Error("the forward reads " + std::to_string(host_reads) +
                " tensor value(s) on the host (item() or a tensor used as a bool), so it may branch on the data, "
                "which a trace would fix to this batch's branch");
  traced_logits = outputs.at(0).toTensor();
  module.type()->addMethod(module._ivalue()->compilation_unit()->create_function(
      c10::QualifiedName(*module.type()->name(), "forward"), state->graph));
  module.eval();
  torch::jit::Module frozen = torch::jit::freeze(module);
  return torch::jit::optimize_for_inference(frozen);
}

// Whether to run `optimized` instead of `loaded`, decided on `batch`, whose logits as loaded are
// `reference`: within 1e-4 of them (relative to their largest magnitude, at least 1) and, with
// Auto, more than 5% faster here. `message` says what was measured and chosen.
struct InferenceChoice {
  bool use_optimized = false;
  LogLevel level = LogLevel::Info;
  std::string message;
};

inline InferenceChoice choose_inference_graph(InferenceOptimization mode, const LogitsFunction& loaded,
                                              const LogitsFunction& optimized, const at::Tensor& batch,
                                              const at::Tensor& reference) {
  c10::NoGradGuard no_grad;
  const at::Tensor candidate = optimized(batch);
  const double difference = (candidate.to(at::kFloat) - reference.to(at::kFloat)).abs().max().item<double>();
  const double scale = std::max(1.0, reference.abs().max().item<double>());
  char line[240];
  if (!(difference <= 1e-4 * scale)) {
    std::snprintf(line, sizeof(line),
                  "the frozen inference graph's logits moved by %.3g (more than 1e-4 x %.3g); keeping the model as "
                  "loaded",
                  difference, scale);
    return {false, LogLevel::Warning, line};
  }
  if (mode == InferenceOptimization::On) {
    std::snprintf(line, sizeof(line), "frozen inference graph (logits within %.1e): using it", difference);
    return {true, LogLevel::Info, line};
  }
  // At least 3 batches and 0.25 s each way, after a warm-up call (the graph specializes on its
  // first runs), so that a small model's timing is not noise.
  auto images_per_second = [&](const LogitsFunction& forward) {
    forward(batch);
    const auto start = std::chrono::steady_clock::now();
    int batches = 0;
    double seconds = 0;
    while (batches < 3 || seconds < 0.25) {
      forward(batch);
      ++batches;
      seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    return static_cast<double>(batches * batch.size(0)) / seconds;
  };
  const double as_loaded = images_per_second(loaded), fast = images_per_second(optimized);
  const bool faster = fast > 1.05 * as_loaded;
  std::snprintf(line, sizeof(line),
                "frozen inference graph: %.0f img/s against %.0f as loaded (batch of %lld, logits within %.1e): %s",
                fast, as_loaded, static_cast<long long>(batch.size(0)), difference,
                faster ? "using it" : "keeping the model as loaded");
  return {faster, LogLevel::Info, line};
}

}  // namespace ssld
