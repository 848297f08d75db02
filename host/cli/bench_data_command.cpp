// `ssld bench-data CONFIG`: images/s of a data pipeline for 1..N threads, decode-only (read
// and decode, no augmentation) and full (the loader: decode, augment, assemble a uint8 batch).
#include "cli/command_setup.hpp"
#include "cli/commands.hpp"
#include "core/cpu_budget.hpp"
#include "data/data_config.hpp"
#include "data/loader.hpp"

#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

namespace ssld::host {

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The first `count` draws of epoch 0, read and decoded only.
double decode_only_rate(const DataPipeline& pipeline, int64_t count, int threads) {
  std::vector<const DatasetView*> sources;
  for (const auto& source : pipeline.sources) sources.push_back(source.get());
  const std::vector<AugmentationStep> none;
  const SamplePipeline decode_only(sources, none, 0, 0);
  std::vector<SampleRef> refs;
  for (int64_t step = 0; static_cast<int64_t>(refs.size()) < count && step < pipeline.sampler->steps_per_epoch(); ++step)
    for (const auto& ref : pipeline.sampler->batch(0, step)) refs.push_back(ref);
  refs.resize(std::min<size_t>(refs.size(), static_cast<size_t>(count)));
  tbb::task_arena arena(threads);
  const auto start = std::chrono::steady_clock::now();
  arena.execute([&] { tbb::parallel_for(size_t{0}, refs.size(), [&](size_t i) { decode_only.prepare(refs[i]); }); });
  return static_cast<double>(refs.size()) / seconds_since(start);
}

double pipeline_rate(const DataPipeline& pipeline, int64_t steps, int threads) {
  LoaderSettings settings = pipeline.loader;
  settings.threads = threads;
  Loader loader(*pipeline.samples, *pipeline.sampler, settings);
  loader.start(0, 0);
  int64_t images = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int64_t step = 0; step < steps; ++step) {
    auto batch = loader.next();
    if (!batch) break;
    images += batch->images.size(0);
  }
  const double elapsed = seconds_since(start);
  loader.stop();
  return static_cast<double>(images) / elapsed;
}

}  // namespace

int run_bench_data(const BenchDataCommand& command) {
  Diagnostics diagnostics;
  const auto setup = set_up_command(command.config, command.overrides, diagnostics);
  auto pipeline = build_pipeline(setup->root, command.pipeline, *setup->factory, Sharding{}, diagnostics);
  if (!pipeline && diagnostics.empty())
    diagnostics.add(SourcePlace{command.config, 0, 0}, "the config has no [data." + command.pipeline + "] to benchmark");
  diagnostics.throw_if_any();

  const int max_threads = command.max_threads > 0 ? command.max_threads : cpu_budget().threads;
  const int64_t steps = std::min(command.steps, pipeline->sampler->steps_per_epoch());
  const int64_t images = steps * pipeline->batch_size;
  std::printf("data.%s: %lld steps of %lld images per measurement\n", command.pipeline.c_str(),
              static_cast<long long>(steps), static_cast<long long>(pipeline->batch_size));
  std::printf("%8s %16s %16s %14s %12s\n", "threads", "decode img/s", "pipeline img/s", "pipe/decode", "vs 1 thread");
  pipeline_rate(*pipeline, 1, 1);  // warm up: file cache, allocator, OpenCV's lazy initialization
  double single = 0;
  for (int threads = 1; threads <= max_threads; ++threads) {
    const double decode = decode_only_rate(*pipeline, images, threads);
    const double full = pipeline_rate(*pipeline, steps, threads);
    if (threads == 1) single = full;
    std::printf("%8d %16.0f %16.0f %13.2fx %11.2fx\n", threads, decode, full, full / decode, full / single);
  }
  return 0;
}

}  // namespace ssld::host
