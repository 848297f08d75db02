// The standard samplers: sequential (evaluation), random (shuffled each epoch), mixed (each
// batch takes a fixed share from each source, every source cycling through its own shuffled
// passes) and class_balanced (round-robin over classes). Every batch is a pure function of
// (seed, epoch, step, rank), so resuming at (epoch, step) continues exactly, and the shards of
// all ranks together take each position of an epoch exactly once.
#include <ssld/data.hpp>
#include <ssld/plugin.hpp>
#include <ssld/rng.hpp>

#include <algorithm>
#include <list>
#include <mutex>
#include <numeric>

namespace {

// Shuffled orders of [0, n), keyed by (source, pass), with a small cache: consecutive steps
// reuse the same permutation.
class Permutations {
 public:
  explicit Permutations(uint64_t seed, std::string purpose) : seed_(seed), purpose_(ssld::Rng::purpose_of(purpose)) {}

  std::shared_ptr<const std::vector<int64_t>> get(int64_t stream, int64_t pass, int64_t n) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = cache_.begin(); it != cache_.end(); ++it)
      if (it->stream == stream && it->pass == pass) {
        cache_.splice(cache_.begin(), cache_, it);
        return cache_.front().order;
      }
    auto order = std::make_shared<std::vector<int64_t>>(n);
    std::iota(order->begin(), order->end(), 0);
    ssld::Rng rng(seed_, static_cast<uint64_t>(pass), static_cast<uint64_t>(stream), purpose_);
    for (int64_t i = n - 1; i > 0; --i) std::swap((*order)[i], (*order)[rng.randint(0, i + 1)]);  // Fisher-Yates
    cache_.push_front(Entry{stream, pass, order});
    if (cache_.size() > 16) cache_.pop_back();
    return order;
  }

 private:
  struct Entry {
    int64_t stream, pass;
    std::shared_ptr<const std::vector<int64_t>> order;
  };
  uint64_t seed_, purpose_;
  mutable std::mutex mutex_;
  mutable std::list<Entry> cache_;
};

// Common to samplers that walk one sequence per epoch (all sources concatenated): positions
// [step * B * W + rank * B, + B) of the epoch's order belong to this rank.
class EpochOrderSampler : public ssld::Sampler {
 public:
  void bind(const ssld::SamplerSetup& setup) override {
    setup_ = setup;
    if (setup.batch_size <= 0 || setup.world_size <= 0 || setup.rank < 0 || setup.rank >= setup.world_size)
      throw ssld::Error("invalid sampler setup: batch size " + std::to_string(setup.batch_size) + ", rank " +
                        std::to_string(setup.rank) + " of " + std::to_string(setup.world_size));
    offsets_.assign(1, 0);
    for (const auto* source : setup.sources) offsets_.push_back(offsets_.back() + source->size());
    on_bind();
    const int64_t global_batch = setup.batch_size * setup.world_size;
    steps_ = drop_last() ? epoch_length() / global_batch : (epoch_length() + global_batch - 1) / global_batch;
    if (steps_ == 0)
      throw ssld::Error("an epoch of " + std::to_string(epoch_length()) + " samples is smaller than one batch of " +
                        std::to_string(global_batch) + " (batch size x ranks): lower the batch size");
  }
  int64_t steps_per_epoch() const override { return steps_; }

  std::vector<ssld::SampleRef> batch(int64_t epoch, int64_t step) const override {
    const int64_t begin = (step * setup_.world_size + setup_.rank) * setup_.batch_size;
    const int64_t end = std::min(begin + setup_.batch_size, epoch_length());
    std::vector<ssld::SampleRef> refs;
    for (int64_t position = begin; position < end; ++position) refs.push_back(at_position(epoch, position));
    return refs;
  }

 protected:
  virtual void on_bind() {}
  virtual int64_t epoch_length() const { return offsets_.back(); }
  virtual bool drop_last() const = 0;
  virtual ssld::SampleRef at_position(int64_t epoch, int64_t position) const = 0;

  // Global index over all sources -> (source, index).
  ssld::SampleRef locate(int64_t global, int64_t pass) const {
    const auto source = std::upper_bound(offsets_.begin(), offsets_.end(), global) - offsets_.begin() - 1;
    return ssld::SampleRef{static_cast<int32_t>(source), global - offsets_[source], pass};
  }

  ssld::SamplerSetup setup_;
  std::vector<int64_t> offsets_;  // prefix sums of source sizes
  int64_t steps_ = 0;
};

class SequentialSampler : public EpochOrderSampler {
 public:
  SequentialSampler(const ssld::Options&, const ssld::Context&) {}

 protected:
  bool drop_last() const override { return false; }
  ssld::SampleRef at_position(int64_t epoch, int64_t position) const override { return locate(position, epoch); }
};

class RandomSampler : public EpochOrderSampler {
 public:
  RandomSampler(const ssld::Options& options, const ssld::Context&) : drop_last_(options.get_bool("drop_last")) {}

 protected:
  void on_bind() override { permutations_ = std::make_unique<Permutations>(setup_.seed, "sampler.random"); }
  bool drop_last() const override { return drop_last_; }
  ssld::SampleRef at_position(int64_t epoch, int64_t position) const override {
    return locate((*permutations_->get(0, epoch, offsets_.back()))[position], epoch);
  }

 private:
  bool drop_last_;
  std::unique_ptr<Permutations> permutations_;
};

class ClassBalancedSampler : public EpochOrderSampler {
 public:
  ClassBalancedSampler(const ssld::Options&, const ssld::Context&) {}

 protected:
  void on_bind() override {
    permutations_ = std::make_unique<Permutations>(setup_.seed, "sampler.class_balanced");
    members_.clear();
    labeled_ = 0;
    for (int64_t global = 0; global < offsets_.back(); ++global) {
      const ssld::SampleRef ref = locate(global, 0);
      const int64_t label = setup_.sources[ref.source]->label_of(ref.index);
      if (label < 0) continue;
      if (label >= static_cast<int64_t>(members_.size())) members_.resize(label + 1);
      members_[label].push_back(global);
      ++labeled_;
    }
    members_.erase(std::remove_if(members_.begin(), members_.end(), [](const auto& m) { return m.empty(); }),
                   members_.end());
    if (members_.empty()) throw ssld::Error("class_balanced sampling needs labeled samples; the sources have none");
  }
  int64_t epoch_length() const override { return labeled_; }
  bool drop_last() const override { return true; }
  // Draw t of the run goes to class t % C; each class walks its own shuffled passes.
  ssld::SampleRef at_position(int64_t epoch, int64_t position) const override {
    const int64_t classes = static_cast<int64_t>(members_.size());
    const int64_t draw = epoch * labeled_ + position;
    const auto& members = members_[draw % classes];
    const int64_t k = draw / classes;
    const int64_t n = static_cast<int64_t>(members.size());
    const int64_t pass = k / n;
    return locate(members[(*permutations_->get(draw % classes, pass, n))[k % n]], pass);
  }

 private:
  std::unique_ptr<Permutations> permutations_;
  std::vector<std::vector<int64_t>> members_;  // global indices per (non-empty) class
  int64_t labeled_ = 0;
};

// Each batch takes counts[i] samples from source i; source i's draws form one endless stream
// of shuffled passes, so a small labeled set repeats while a large unlabeled one goes through.
class MixedSampler : public ssld::Sampler {
 public:
  MixedSampler(const ssld::Options& options, const ssld::Context&)
      : fractions_(options.get_float_list("fractions")), epoch_source_(options.get_int("epoch_source")) {
    double total = 0;
    for (double fraction : fractions_) {
      if (!(fraction >= 0) || !std::isfinite(fraction))
        throw ssld::option_error(options, "fractions", "fractions must be finite and non-negative");
      total += fraction;
    }
    if (fractions_.empty() || std::abs(total - 1.0) > 1e-6)
      throw ssld::option_error(options, "fractions", "fractions must sum to 1, they sum to " + std::to_string(total));
    where_ = options.where("fractions");
  }

  void bind(const ssld::SamplerSetup& setup) override {
    setup_ = setup;
    const size_t sources = setup.sources.size();
    if (fractions_.size() != sources)
      throw ssld::Error(where_ + ": " + std::to_string(fractions_.size()) + " fractions for " + std::to_string(sources) +
                        " sources; give one per source");
    // Largest remainder: the counts sum to the batch size exactly.
    counts_.assign(sources, 0);
    std::vector<std::pair<double, size_t>> remainders;
    int64_t assigned = 0;
    for (size_t i = 0; i < sources; ++i) {
      const double exact = fractions_[i] * static_cast<double>(setup.batch_size);
      counts_[i] = static_cast<int64_t>(exact);
      assigned += counts_[i];
      remainders.emplace_back(exact - static_cast<double>(counts_[i]), i);
    }
    std::sort(remainders.begin(), remainders.end(), [](auto a, auto b) { return a.first > b.first; });
    for (size_t i = 0; assigned < setup.batch_size; ++i, ++assigned) ++counts_[remainders[i % sources].second];
    steps_ = 0;
    for (size_t i = 0; i < sources; ++i) {
      if (counts_[i] == 0) continue;
      if (setup.sources[i]->size() == 0) throw ssld::Error(where_ + ": source " + std::to_string(i) + " is empty");
      const int64_t per_step = counts_[i] * setup.world_size;
      const int64_t steps = (setup.sources[i]->size() + per_step - 1) / per_step;
      if (epoch_source_ < 0 ? steps > steps_ : static_cast<int64_t>(i) == epoch_source_) steps_ = steps;
    }
    if (epoch_source_ >= static_cast<int64_t>(sources) || steps_ == 0)
      throw ssld::Error(where_ + ": epoch_source " + std::to_string(epoch_source_) + " names no source with a share");
    permutations_ = std::make_unique<Permutations>(setup.seed, "sampler.mixed");
  }

  int64_t steps_per_epoch() const override { return steps_; }

  std::vector<ssld::SampleRef> batch(int64_t epoch, int64_t step) const override {
    std::vector<ssld::SampleRef> refs;
    refs.reserve(static_cast<size_t>(setup_.batch_size));
    for (size_t source = 0; source < counts_.size(); ++source) {
      const int64_t n = setup_.sources[source]->size();
      const int64_t first = ((epoch * steps_ + step) * setup_.world_size + setup_.rank) * counts_[source];
      for (int64_t draw = first; draw < first + counts_[source]; ++draw) {
        const int64_t pass = draw / n;
        refs.push_back(ssld::SampleRef{static_cast<int32_t>(source),
                                       (*permutations_->get(static_cast<int64_t>(source), pass, n))[draw % n], pass});
      }
    }
    return refs;
  }

 private:
  std::vector<double> fractions_;
  int64_t epoch_source_;
  std::string where_;
  ssld::SamplerSetup setup_;
  std::vector<int64_t> counts_;
  int64_t steps_ = 0;
  std::unique_ptr<Permutations> permutations_;
};

}  // namespace

SSLD_PLUGIN("standard_samplers", "0.1.0", registry) {
  ssld::add_component<ssld::Sampler, SequentialSampler>(
      registry, "sequential", "Every sample once, in order, sharded across ranks (evaluation).", ssld::Schema());
  ssld::add_component<ssld::Sampler, RandomSampler>(
      registry, "random", "All sources concatenated and shuffled anew each epoch.",
      ssld::Schema().add_bool("drop_last", true, "drop the last incomplete global batch"));
  ssld::add_component<ssld::Sampler, MixedSampler>(
      registry, "mixed",
      "Each batch takes a fixed share from each source (e.g. labeled and unlabeled); each source cycles "
      "through its own shuffled passes.",
      ssld::Schema()
          .require(ssld::OptionType::FloatList, "fractions", "share of each batch per source, in source order; sums to 1")
          .add_int("epoch_source", -1, "source whose single pass defines an epoch; -1: the one needing most steps"));
  ssld::add_component<ssld::Sampler, ClassBalancedSampler>(
      registry, "class_balanced", "Labeled samples, classes in turn, each class cycling through its own shuffled passes.",
      ssld::Schema());
}
