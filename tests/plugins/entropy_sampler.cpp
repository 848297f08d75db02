// A sampler whose order is drawn from std::random_device when it is bound, so only its
// state() can reproduce it: the trainer's checkpoint must save it and a resume restore it.
#include <ssld/data.hpp>
#include <ssld/plugin.hpp>
#include <ssld/rng.hpp>

#include <algorithm>
#include <numeric>
#include <random>

namespace {
class EntropySampler : public ssld::Sampler {
 public:
  EntropySampler(const ssld::Options&, const ssld::Context&) {}
  void bind(const ssld::SamplerSetup& setup) override {
    size_ = setup.sources.at(0)->size();
    batch_size_ = setup.batch_size;
    shuffle(std::random_device{}());
  }
  int64_t steps_per_epoch() const override { return size_ / batch_size_; }
  std::vector<ssld::SampleRef> batch(int64_t epoch, int64_t step) const override {
    std::vector<ssld::SampleRef> refs;
    for (int64_t i = step * batch_size_; i < (step + 1) * batch_size_; ++i) refs.push_back({0, order_[i], epoch});
    return refs;
  }
  std::string state() const override { return std::to_string(seed_); }
  void load_state(const std::string& state) override { shuffle(std::stoull(state)); }

 private:
  void shuffle(uint64_t seed) {
    seed_ = seed;
    order_.resize(static_cast<size_t>(size_));
    std::iota(order_.begin(), order_.end(), 0);
    ssld::Rng rng(seed, 0, 0, 0);
    for (int64_t i = size_ - 1; i > 0; --i) std::swap(order_[i], order_[rng.randint(0, i + 1)]);
  }
  int64_t size_ = 0, batch_size_ = 1;
  uint64_t seed_ = 0;
  std::vector<int64_t> order_;
};
}  // namespace

SSLD_PLUGIN("entropy_sampler", "1.0.0", registry) {
  ssld::add_component<ssld::Sampler, EntropySampler>(
      registry, "test_entropy_order", "One shuffled order drawn from std::random_device; kept in its state().",
      ssld::Schema());
}
