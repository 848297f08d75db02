// synthetic: generated images for dry runs, benchmarks and tests, when the real files are not at
// hand. Each image is a smooth random pattern (two-colour gradient with a class-dependent
// stripe frequency, plus noise) drawn from the run's seed and the sample id: the same every
// time, different per sample, and learnable, so a dry run exercises real arithmetic.
#include <ssld/plugin.hpp>
#include <ssld/rng.hpp>

#include <ATen/ATen.h>

#include <cmath>

namespace {

class SyntheticDataset : public ssld::Dataset {
 public:
  SyntheticDataset(const ssld::Options& options, const ssld::Context& context)
      : count_(options.get_int("count")), channels_(options.get_int("channels")),
        num_classes_(options.get_int("num_classes")), labeled_(options.get_bool("labeled")), seed_(context.seed()) {
    const auto size = options.get_int_list("size");
    if (size.size() != 2 || size[0] <= 0 || size[1] <= 0)
      throw ssld::option_error(options, "size", "size is [height, width], both positive");
    height_ = size[0];
    width_ = size[1];
    if (count_ <= 0) throw ssld::option_error(options, "count", "count must be positive");
    if (channels_ != 1 && channels_ != 3) throw ssld::option_error(options, "channels", "channels is 1 or 3");
    if (num_classes_ <= 0) throw ssld::option_error(options, "num_classes", "num_classes must be positive");
  }

  int64_t size() const override { return count_; }
  ssld::Sample get(int64_t index) const override {
    ssld::Rng rng(seed_, 0, static_cast<uint64_t>(index), ssld::Rng::purpose_of("synthetic"));
    const int64_t label = index % num_classes_;
    at::Tensor image = at::empty({height_, width_, channels_}, at::kByte);
    uint8_t* pixels = image.data_ptr<uint8_t>();
    double low[3], high[3];
    for (int c = 0; c < 3; ++c) low[c] = 255 * rng.uniform(), high[c] = 255 * rng.uniform();
    const double frequency = 1.0 + static_cast<double>(label), phase = 6.283 * rng.uniform();
    for (int64_t y = 0; y < height_; ++y)
      for (int64_t x = 0; x < width_; ++x) {
        const double t = 0.5 + 0.5 * std::sin(phase + frequency * 6.283 * static_cast<double>(x + y) /
                                                          static_cast<double>(width_ + height_));
        for (int64_t c = 0; c < channels_; ++c) {
          const double value = low[c] + (high[c] - low[c]) * t + 16.0 * (rng.uniform() - 0.5);
          *pixels++ = static_cast<uint8_t>(std::clamp(value, 0.0, 255.0));
        }
      }
    ssld::Sample sample;
    sample.image = image;
    sample.label = label_of(index);
    sample.id = static_cast<uint64_t>(index);
    sample.origin = "synthetic#" + std::to_string(index);
    return sample;
  }
  int64_t label_of(int64_t index) const override { return labeled_ ? index % num_classes_ : -1; }
  int64_t num_classes() const override { return labeled_ ? num_classes_ : 0; }
  std::string identity() const override {
    return "synthetic:" + std::to_string(count_) + ":" + std::to_string(height_) + "x" + std::to_string(width_) + "x" +
           std::to_string(channels_) + ":" + std::to_string(num_classes_) + ":" + std::to_string(seed_);
  }

 private:
  int64_t count_, channels_, num_classes_;
  bool labeled_;
  uint64_t seed_;
  int64_t height_ = 0, width_ = 0;
};

}  // namespace

SSLD_PLUGIN("synthetic_dataset", "0.1.0", registry) {
  ssld::add_component<ssld::Dataset, SyntheticDataset>(
      registry, "synthetic", "Generated images (deterministic per seed and id) for dry runs, benchmarks and tests.",
      ssld::Schema()
          .add_int("count", 1000, "number of images")
          .add_int_list("size", {64, 64}, "[height, width]")
          .add_int("channels", 3, "1 (gray) or 3 (RGB)")
          .add_int("num_classes", 10, "labels are id % num_classes")
          .add_bool("labeled", true, "false: the samples carry no labels"));
}
