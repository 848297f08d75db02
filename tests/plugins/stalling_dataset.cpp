// A dataset for loader tests: sample i is an 8x8 gray image of value i % 256 with label
// i % 10; one index can be made to throw and another to stall, to test error propagation and
// the loader's stuck-read timeout.
#include <ssld/data.hpp>
#include <ssld/plugin.hpp>

#include <ATen/ops/full.h>

#include <chrono>
#include <stdexcept>
#include <thread>

namespace {
class StallingDataset : public ssld::Dataset {
 public:
  StallingDataset(const ssld::Options& options, const ssld::Context&)
      : size_(options.get_int("size")), throw_index_(options.get_int("throw_index")),
        stall_index_(options.get_int("stall_index")), stall_seconds_(options.get_float("stall_seconds")) {}
  int64_t size() const override { return size_; }
  ssld::Sample get(int64_t index) const override {
    if (index == throw_index_) throw std::runtime_error("simulated read failure");
    if (index == stall_index_) std::this_thread::sleep_for(std::chrono::duration<double>(stall_seconds_));
    ssld::Sample sample;
    sample.image = at::full({8, 8, 1}, index % 256, at::kByte);
    sample.label = index % 10;
    sample.id = static_cast<uint64_t>(index);
    sample.origin = "stalling#" + std::to_string(index);
    return sample;
  }
  int64_t label_of(int64_t index) const override { return index % 10; }
  int64_t num_classes() const override { return 10; }
  std::string identity() const override { return "stalling:" + std::to_string(size_); }

 private:
  int64_t size_, throw_index_, stall_index_;
  double stall_seconds_;
};
}  // namespace

SSLD_PLUGIN("stalling_dataset", "1.0.0", registry) {
  ssld::add_component<ssld::Dataset, StallingDataset>(
      registry, "stalling", "Synthetic 8x8 images; one index throws, one stalls.",
      ssld::Schema()
          .add_int("size", 100, "number of samples")
          .add_int("throw_index", -1, "index whose read throws (-1: none)")
          .add_int("stall_index", -1, "index whose read sleeps (-1: none)")
          .add_float("stall_seconds", 0.0, "how long the stalling read sleeps"));
}
