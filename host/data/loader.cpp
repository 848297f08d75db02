#include "data/loader.hpp"

#include "core/errors.hpp"

#include <ATen/ops/empty.h>

#include <spdlog/spdlog.h>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <variant>

namespace ssld::host {

HostBatch assemble_batch(const SamplePipeline& samples, const std::vector<SampleRef>& refs, bool pin_memory,
                         tbb::task_arena& arena) {
  std::vector<PreparedSample> prepared(refs.size());
  arena.execute([&] {
    tbb::parallel_for(size_t{0}, refs.size(), [&](size_t i) { prepared[i] = samples.prepare(refs[i]); });
  });
  HostBatch batch;
  for (size_t i = 0; i < refs.size(); ++i)
    if (!prepared[i].skipped) batch.refs.push_back(refs[i]);
  prepared.erase(std::remove_if(prepared.begin(), prepared.end(), [](const auto& p) { return p.skipped; }),
                 prepared.end());

  const int64_t n = static_cast<int64_t>(prepared.size());
  const auto options = at::TensorOptions().dtype(at::kByte).pinned_memory(pin_memory);
  if (n == 0) {
    batch.images = at::empty({0, 0, 0, 0}, options);
  } else {
    const auto shape = prepared[0].image.sizes();
    for (const auto& sample : prepared)
      if (sample.image.sizes() != shape)
        throw DataError("a batch mixes image sizes " + std::to_string(shape[0]) + "x" + std::to_string(shape[1]) + "x" +
                        std::to_string(shape[2]) + " and " + std::to_string(sample.image.size(0)) + "x" +
                        std::to_string(sample.image.size(1)) + "x" + std::to_string(sample.image.size(2)) +
                        " (HxWxC, sample id " + std::to_string(sample.id) +
                        "): add a resize or crop augmentation, or grayscale_to_rgb to a grayscale source");
    batch.images = at::empty({n, shape[2], shape[0], shape[1]}, options);
    arena.execute([&] {
      tbb::parallel_for(int64_t{0}, n, [&](int64_t i) { batch.images[i].copy_(prepared[i].image.permute({2, 0, 1})); });
    });
  }
  batch.labels = at::empty({n}, at::kLong);
  batch.ids = at::empty({n}, at::kLong);
  auto* labels = batch.labels.data_ptr<int64_t>();
  auto* ids = batch.ids.data_ptr<int64_t>();
  batch.origins.reserve(prepared.size());
  for (int64_t i = 0; i < n; ++i) {
    labels[i] = prepared[i].label;
    ids[i] = static_cast<int64_t>(prepared[i].id);
    batch.origins.push_back(std::move(prepared[i].origin));
  }
  return batch;
}

struct EndOfEpoch {};
using Item = std::variant<HostBatch, std::exception_ptr, EndOfEpoch>;

// Shared with the producer thread, which may outlive the Loader if a read is stuck.
struct Loader::State {
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<Item> queue;
  bool stop = false;
  bool finished = true;
  std::thread producer;
};

Loader::Loader(const SamplePipeline& samples, const Sampler& sampler, LoaderSettings settings)
    : samples_(samples), sampler_(sampler), settings_(settings) {
  if (settings_.threads < 1) settings_.threads = 1;
  if (settings_.prefetch < 1) settings_.prefetch = 1;
}

Loader::~Loader() { stop(); }

void Loader::start(int64_t epoch, int64_t first_step) {
  stop();
  auto state = std::make_shared<State>();
  state->finished = false;
  state_ = state;
  // The thread holds the shared state and the pipeline's objects, not `this`: after a stuck
  // read it may outlive the Loader.
  state->producer = std::thread([state, epoch, first_step, &samples = samples_, &sampler = sampler_,
                                 settings = settings_] {
    tbb::task_arena arena(settings.threads);
    auto push = [&](Item item) {
      std::unique_lock<std::mutex> lock(state->mutex);
      state->changed.wait(lock, [&] { return state->stop || state->queue.size() < static_cast<size_t>(settings.prefetch); });
      if (!state->stop) state->queue.push_back(std::move(item));
      state->changed.notify_all();
    };
    try {
      for (int64_t step = first_step; step < sampler.steps_per_epoch(); ++step) {
        {
          std::lock_guard<std::mutex> lock(state->mutex);
          if (state->stop) break;
        }
        HostBatch batch = assemble_batch(samples, sampler.batch(epoch, step), settings.pin_memory, arena);
        batch.epoch = epoch;
        batch.step = step;
        push(std::move(batch));
      }
      push(EndOfEpoch{});
    } catch (...) {
      push(std::current_exception());
    }
    std::lock_guard<std::mutex> lock(state->mutex);
    state->finished = true;
    state->changed.notify_all();
  });
}

std::optional<HostBatch> Loader::next() {
  if (!state_) return std::nullopt;
  std::unique_lock<std::mutex> lock(state_->mutex);
  const auto timeout = std::chrono::duration<double>(settings_.read_timeout_s);
  if (!state_->changed.wait_for(lock, timeout, [&] { return !state_->queue.empty(); }))
    throw DataError("no batch arrived within " + std::to_string(settings_.read_timeout_s) +
                    " s: a read is stuck or far too slow (a hung network file system?). Raise data.read_timeout_s "
                    "if reads are legitimately this slow.");
  Item item = std::move(state_->queue.front());
  state_->queue.pop_front();
  state_->changed.notify_all();
  lock.unlock();
  if (auto* error = std::get_if<std::exception_ptr>(&item)) std::rethrow_exception(*error);
  if (std::holds_alternative<EndOfEpoch>(item)) return std::nullopt;
  return std::move(std::get<HostBatch>(item));
}

void Loader::stop() {
  if (!state_) return;
  std::shared_ptr<State> state = std::move(state_);
  std::unique_lock<std::mutex> lock(state->mutex);
  state->stop = true;
  state->queue.clear();
  state->changed.notify_all();
  const bool finished = state->changed.wait_for(lock, std::chrono::duration<double>(settings_.read_timeout_s),
                                                [&] { return state->finished; });
  lock.unlock();
  if (finished) {
    state->producer.join();
  } else {  // a read is stuck: leave the thread behind rather than hang the program
    spdlog::warn("the data loader's producer is stuck in a read; leaving it behind");
    state->producer.detach();
  }
}

}  // namespace ssld::host
