// Batch augmentations, on the device after the uint8 batch was copied there: normalize (to
// float mean/std, the step that makes 1 byte per pixel cross instead of 4), mixup and cutmix.
// The mixed batch is what both the teacher and the student see; labels are not mixed here:
// Batch::mix_index and mix_lambda tell label-reading losses how to mix them.
#include <ssld/augmentation.hpp>
#include <ssld/plugin.hpp>

#include <torch/torch.h>

#include <cmath>

namespace {

class Normalize : public ssld::BatchAugmentation {
 public:
  Normalize(const ssld::Options& options, const ssld::Context&)
      : mean_(options.get_float_list("mean")), std_(options.get_float_list("std")) {
    if (mean_.empty() || mean_.size() != std_.size())
      throw ssld::option_error(options, "std", "mean and std need one value per channel each");
    for (double s : std_)
      if (s <= 0) throw ssld::option_error(options, "std", "std must be positive");
  }
  // Pixel values in [0, 255] -> (x / 255 - mean) / std, per channel (torchvision's convention).
  void apply(ssld::Batch& batch, ssld::Rng&) const override {
    const int64_t channels = batch.images.size(1);
    if (channels != static_cast<int64_t>(mean_.size()))
      throw ssld::Error("normalize has " + std::to_string(mean_.size()) + " channel(s) of mean/std, the images have " +
                        std::to_string(channels));
    const auto options = batch.images.options();
    const auto mean = torch::tensor(mean_, options.dtype(torch::kDouble)).to(options).mul_(255.0).view({1, -1, 1, 1});
    const auto scale = torch::tensor(std_, options.dtype(torch::kDouble)).to(options).mul_(255.0).reciprocal_().view({1, -1, 1, 1});
    batch.images.sub_(mean).mul_(scale);
  }

 private:
  std::vector<double> mean_, std_;
};

// Beta(alpha, alpha) from two gamma draws (Marsaglia-Tsang), from the batch's own stream.
double sample_gamma(double shape, ssld::Rng& rng) {
  if (shape < 1.0) return sample_gamma(shape + 1.0, rng) * std::pow(1.0 - rng.uniform(), 1.0 / shape);
  const double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  while (true) {
    double x, v;
    do {
      x = rng.normal();
      v = 1.0 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const double u = 1.0 - rng.uniform();
    if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
  }
}
double sample_beta(double alpha, ssld::Rng& rng) {
  const double a = sample_gamma(alpha, rng), b = sample_gamma(alpha, rng);
  return a / (a + b);
}

// Shared by mixup and cutmix: the partner of sample i is sample N-1-i (timm's flip), one
// lambda per batch. At most one mixing applies to a batch.
class Mixing : public ssld::BatchAugmentation {
 public:
  Mixing(const ssld::Options& options) : alpha_(options.get_float("alpha")), p_(options.get_float("p")) {
    if (alpha_ <= 0) throw ssld::option_error(options, "alpha", "alpha must be positive");
  }
  void apply(ssld::Batch& batch, ssld::Rng& rng) const override {
    if (batch.mix_index.defined() || batch.images.size(0) < 2 || !rng.bernoulli(p_)) return;
    const double lambda = mix(batch.images, sample_beta(alpha_, rng), rng);
    const auto n = batch.images.size(0);
    batch.mix_index = torch::arange(n - 1, -1, -1, batch.labels.options());
    batch.mix_lambda = torch::full({n}, lambda, batch.images.options());
  }

 protected:
  // Mixes images with their flipped partners in place; returns the effective lambda.
  virtual double mix(torch::Tensor& images, double lambda, ssld::Rng& rng) const = 0;

 private:
  double alpha_, p_;
};

class Mixup : public Mixing {
 public:
  Mixup(const ssld::Options& options, const ssld::Context&) : Mixing(options) {}

 protected:
  double mix(torch::Tensor& images, double lambda, ssld::Rng&) const override {
    const torch::Tensor partners = images.flip(0);  // a copy, taken before images change
    images.mul_(lambda).add_(partners, 1.0 - lambda);
    return lambda;
  }
};

class Cutmix : public Mixing {
 public:
  Cutmix(const ssld::Options& options, const ssld::Context&) : Mixing(options) {}

 protected:
  // A box of area (1 - lambda) around a uniform center, clipped; lambda then follows the box.
  double mix(torch::Tensor& images, double lambda, ssld::Rng& rng) const override {
    const int64_t height = images.size(2), width = images.size(3);
    const double cut = std::sqrt(1.0 - lambda);
    const int64_t cut_h = static_cast<int64_t>(height * cut), cut_w = static_cast<int64_t>(width * cut);
    const int64_t cy = rng.randint(0, height), cx = rng.randint(0, width);
    const int64_t y0 = std::clamp<int64_t>(cy - cut_h / 2, 0, height), y1 = std::clamp<int64_t>(cy + cut_h / 2, 0, height);
    const int64_t x0 = std::clamp<int64_t>(cx - cut_w / 2, 0, width), x1 = std::clamp<int64_t>(cx + cut_w / 2, 0, width);
    if (y1 <= y0 || x1 <= x0) return 1.0;
    using torch::indexing::Slice;
    const auto box = images.index({Slice(), Slice(), Slice(y0, y1), Slice(x0, x1)});
    box.copy_(box.flip(0));
    return 1.0 - static_cast<double>((y1 - y0) * (x1 - x0)) / static_cast<double>(height * width);
  }
};

}  // namespace

SSLD_PLUGIN("batch_augmentations", "0.1.0", registry) {
  using ssld::Schema;
  ssld::add_component<ssld::BatchAugmentation, Normalize>(
      registry, "normalize", "(x / 255 - mean) / std per channel, on the device.",
      Schema()
          .add_float_list("mean", {0.485, 0.456, 0.406}, "per-channel mean in [0, 1] units (ImageNet's by default)")
          .add_float_list("std", {0.229, 0.224, 0.225}, "per-channel standard deviation in [0, 1] units"));
  ssld::add_component<ssld::BatchAugmentation, Mixup>(
      registry, "mixup", "mixup (Zhang et al.): blend each image with its partner, lambda ~ Beta(alpha, alpha).",
      Schema().add_float("alpha", 0.2, "Beta distribution parameter").add_float("p", 1.0, "probability per batch"));
  ssld::add_component<ssld::BatchAugmentation, Cutmix>(
      registry, "cutmix", "CutMix (Yun et al.): paste a box of the partner image; lambda follows the box's area.",
      Schema().add_float("alpha", 1.0, "Beta distribution parameter").add_float("p", 1.0, "probability per batch"));
}
