// Per-sample augmentations on the CPU, uint8 HWC in and out, with torchvision's semantics:
// random_resized_crop, resize, center_crop, random_crop, hflip, color_jitter, random_erasing,
// and (randaugment.cpp) timm's RandAugment. Every random draw comes from the ssld::Rng that
// the loader hands in, keyed by the sample, its pass and the step's position.
#include "image_ops.hpp"
#include "randaugment.hpp"

#include <ssld/augmentation.hpp>
#include <ssld/plugin.hpp>

#include <ATen/ops/flip.h>

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

namespace ssld::augment {
namespace {

class RandomResizedCrop : public Augmentation {
 public:
  RandomResizedCrop(const Options& options, const Context&)
      : size_(size_option(options, "size")), scale_(range_option(options, "scale")), ratio_(range_option(options, "ratio")),
        interpolation_(interpolation_of(options.get_string("interpolation"))) {
    if (scale_.first <= 0 || scale_.second > 1) throw option_error(options, "scale", "scale must lie in (0, 1]");
    if (ratio_.first <= 0) throw option_error(options, "ratio", "ratio must be positive");
  }

  // torchvision's RandomResizedCrop.get_params: 10 tries of a random area and aspect ratio,
  // then a center crop with the ratio clamped to the allowed range.
  at::Tensor apply(const at::Tensor& image, Rng& rng) const override {
    const double height = static_cast<double>(image.size(0)), width = static_cast<double>(image.size(1));
    const double log_low = std::log(ratio_.first), log_high = std::log(ratio_.second);
    for (int attempt = 0; attempt < 10; ++attempt) {
      const double area = height * width * rng.uniform(scale_.first, scale_.second);
      const double aspect = std::exp(rng.uniform(log_low, log_high));
      // Python's round (half to even), as torchvision's get_params.
      const int64_t w = std::llrint(std::sqrt(area * aspect));
      const int64_t h = std::llrint(std::sqrt(area / aspect));
      if (w > 0 && h > 0 && w <= image.size(1) && h <= image.size(0)) {
        const int64_t top = rng.randint(0, image.size(0) - h + 1);
        const int64_t left = rng.randint(0, image.size(1) - w + 1);
        return resize(crop(image, top, left, h, w), size_.first, size_.second, interpolation_);
      }
    }
    const double in_ratio = width / height;
    int64_t w = image.size(1), h = image.size(0);
    if (in_ratio < ratio_.first) h = std::llrint(width / ratio_.first);
    else if (in_ratio > ratio_.second) w = std::llrint(height * ratio_.second);
    return resize(crop(image, (image.size(0) - h) / 2, (image.size(1) - w) / 2, h, w), size_.first, size_.second,
                  interpolation_);
  }

 private:
  std::pair<int64_t, int64_t> size_;
  std::pair<double, double> scale_, ratio_;
  Interpolation interpolation_;
};

class Resize : public Augmentation {
 public:
  Resize(const Options& options, const Context&)
      : size_(options.get_int_list("size")), interpolation_(interpolation_of(options.get_string("interpolation"))) {
    size_option(options, "size");  // validates
  }
  // One value: the shorter side becomes it, keeping the aspect ratio; two: exactly [h, w].
  at::Tensor apply(const at::Tensor& image, Rng&) const override {
    if (size_.size() == 2) return resize(image, size_[0], size_[1], interpolation_);
    const int64_t h = image.size(0), w = image.size(1), side = size_[0];
    if (h <= w) return resize(image, side, std::max<int64_t>(1, w * side / h), interpolation_);
    return resize(image, std::max<int64_t>(1, h * side / w), side, interpolation_);
  }

 private:
  std::vector<int64_t> size_;
  Interpolation interpolation_;
};

class CenterCrop : public Augmentation {
 public:
  CenterCrop(const Options& options, const Context&) : size_(size_option(options, "size")) {}
  // As torchvision's center_crop: the offset rounded half to even (Python's round); a side
  // smaller than the crop is zero-padded by (crop - side) // 2 before it and the rest after.
  at::Tensor apply(const at::Tensor& image, Rng&) const override {
    auto offset = [](int64_t side, int64_t crop_side) {
      if (crop_side > side) return -((crop_side - side) / 2);
      return static_cast<int64_t>(std::nearbyint(static_cast<double>(side - crop_side) / 2.0));
    };
    return crop(image, offset(image.size(0), size_.first), offset(image.size(1), size_.second), size_.first,
                size_.second);
  }

 private:
  std::pair<int64_t, int64_t> size_;
};

class RandomCrop : public Augmentation {
 public:
  RandomCrop(const Options& options, const Context&)
      : size_(size_option(options, "size")), padding_(options.get_int("padding")),
        fill_(pixel_option(options, "fill")),
        pad_if_needed_(options.get_bool("pad_if_needed")) {
    if (padding_ < 0) throw option_error(options, "padding", "padding must be >= 0");
  }
  at::Tensor apply(const at::Tensor& image, Rng& rng) const override {
    int64_t pad_y = padding_, pad_x = padding_;
    if (pad_if_needed_) {
      pad_y = std::max(pad_y, (size_.first - image.size(0) + 1) / 2);
      pad_x = std::max(pad_x, (size_.second - image.size(1) + 1) / 2);
    }
    const int64_t height = image.size(0) + 2 * pad_y, width = image.size(1) + 2 * pad_x;
    if (height < size_.first || width < size_.second)
      throw Error("image of " + std::to_string(image.size(0)) + "x" + std::to_string(image.size(1)) +
                  " is smaller than the crop; set pad_if_needed = true");
    const int64_t top = rng.randint(0, height - size_.first + 1) - pad_y;
    const int64_t left = rng.randint(0, width - size_.second + 1) - pad_x;
    return crop(image, top, left, size_.first, size_.second, fill_);
  }

 private:
  std::pair<int64_t, int64_t> size_;
  int64_t padding_;
  uint8_t fill_;
  bool pad_if_needed_;
};

class HorizontalFlip : public Augmentation {
 public:
  HorizontalFlip(const Options& options, const Context&) : p_(options.get_float("p")) {}
  at::Tensor apply(const at::Tensor& image, Rng& rng) const override {
    return rng.bernoulli(p_) ? at::flip(image, {1}) : image;
  }

 private:
  double p_;
};

class ColorJitter : public Augmentation {
 public:
  ColorJitter(const Options& options, const Context&)
      : brightness_(options.get_float("brightness")), contrast_(options.get_float("contrast")),
        saturation_(options.get_float("saturation")), hue_(options.get_float("hue")) {
    if (brightness_ < 0 || contrast_ < 0 || saturation_ < 0) throw option_error(options, "brightness", "factors must be >= 0");
    if (hue_ < 0 || hue_ > 0.5) throw option_error(options, "hue", "hue must lie in [0, 0.5]");
  }
  // torchvision's ColorJitter: the four adjustments in a random order, each with a factor drawn
  // uniformly around 1 (hue: a shift in turns of the color wheel).
  at::Tensor apply(const at::Tensor& image, Rng& rng) const override {
    int order[4] = {0, 1, 2, 3};
    for (int i = 3; i > 0; --i) std::swap(order[i], order[rng.randint(0, i + 1)]);
    at::Tensor out = image.clone();
    cv::Mat mat = as_mat(out);
    for (int op : order) {
      if (op == 0 && brightness_ > 0) {
        const double factor = rng.uniform(std::max(0.0, 1 - brightness_), 1 + brightness_);
        mat.convertTo(mat, CV_8U, factor);
      } else if (op == 1 && contrast_ > 0) {
        const double factor = rng.uniform(std::max(0.0, 1 - contrast_), 1 + contrast_);
        const cv::Mat gray = grayscale_like(mat);
        const double mean = cv::mean(gray)[0];
        mat.convertTo(mat, CV_8U, factor, (1 - factor) * mean);
      } else if (op == 2 && saturation_ > 0 && mat.channels() == 3) {
        const double factor = rng.uniform(std::max(0.0, 1 - saturation_), 1 + saturation_);
        blend(mat, grayscale_like(mat), factor, mat);
      } else if (op == 3 && hue_ > 0 && mat.channels() == 3) {
        const double shift = rng.uniform(-hue_, hue_);
        cv::Mat hsv;
        cv::cvtColor(mat, hsv, cv::COLOR_RGB2HSV_FULL);  // hue in [0, 256)
        const int delta = static_cast<int>(std::lround(shift * 256));
        for (auto it = hsv.begin<cv::Vec3b>(); it != hsv.end<cv::Vec3b>(); ++it) (*it)[0] = static_cast<uint8_t>((*it)[0] + delta);
        cv::cvtColor(hsv, mat, cv::COLOR_HSV2RGB_FULL);
      }
    }
    return out;
  }

 private:
  double brightness_, contrast_, saturation_, hue_;
};

class RandomErasing : public Augmentation {
 public:
  RandomErasing(const Options& options, const Context&)
      : p_(options.get_float("p")), scale_(range_option(options, "scale")), ratio_(range_option(options, "ratio")),
        random_fill_(options.get_string("value") == "random") {}
  // torchvision/timm RandomErasing on the uint8 image: a random rectangle is filled with noise
  // (uniform over [0, 255]) or zeros.
  at::Tensor apply(const at::Tensor& image, Rng& rng) const override {
    if (!rng.bernoulli(p_)) return image;
    const int64_t height = image.size(0), width = image.size(1), channels = image.size(2);
    for (int attempt = 0; attempt < 10; ++attempt) {
      const double area = static_cast<double>(height * width) * rng.uniform(scale_.first, scale_.second);
      const double aspect = std::exp(rng.uniform(std::log(ratio_.first), std::log(ratio_.second)));
      const int64_t h = std::llround(std::sqrt(area * aspect)), w = std::llround(std::sqrt(area / aspect));
      if (h <= 0 || w <= 0 || h >= height || w >= width) continue;
      const int64_t top = rng.randint(0, height - h + 1), left = rng.randint(0, width - w + 1);
      at::Tensor out = image.clone();
      uint8_t* data = out.data_ptr<uint8_t>();
      for (int64_t y = top; y < top + h; ++y)
        for (int64_t x = left; x < left + w; ++x)
          for (int64_t c = 0; c < channels; ++c)
            data[(y * width + x) * channels + c] = random_fill_ ? static_cast<uint8_t>(rng.next_u32() & 0xFF) : 0;
      return out;
    }
    return image;
  }

 private:
  double p_;
  std::pair<double, double> scale_, ratio_;
  bool random_fill_;
};

}  // namespace
}  // namespace ssld::augment

SSLD_PLUGIN("image_augmentations", "0.1.0", registry) {
  using namespace ssld;
  using namespace ssld::augment;
  const auto interpolations = interpolation_names();
  add_component<Augmentation, RandomResizedCrop>(
      registry, "random_resized_crop", "A crop of random area and aspect ratio, resized (torchvision's RandomResizedCrop).",
      Schema()
          .require(OptionType::IntList, "size", "output [side] or [height, width]")
          .add_float_list("scale", {0.08, 1.0}, "range of the crop's area as a fraction of the image")
          .add_float_list("ratio", {3.0 / 4.0, 4.0 / 3.0}, "range of the crop's aspect ratio (width / height)")
          .add_string("interpolation", "bilinear", "resize filter", interpolations));
  add_component<Augmentation, Resize>(
      registry, "resize", "Resize: [side] sets the shorter side keeping the aspect ratio, [height, width] both.",
      Schema()
          .require(OptionType::IntList, "size", "[shorter side] or [height, width]")
          .add_string("interpolation", "bilinear", "resize filter", interpolations));
  add_component<Augmentation, CenterCrop>(
      registry, "center_crop", "The central [height, width] (zero-padded when the image is smaller).",
      Schema().require(OptionType::IntList, "size", "[side] or [height, width]"));
  add_component<Augmentation, RandomCrop>(
      registry, "random_crop", "A random crop after optional constant padding (torchvision's RandomCrop).",
      Schema()
          .require(OptionType::IntList, "size", "[side] or [height, width]")
          .add_int("padding", 0, "pixels of padding on every side before cropping")
          .add_int("fill", 0, "value of the padding pixels")
          .add_bool("pad_if_needed", false, "pad images smaller than the crop"));
  add_component<Augmentation, HorizontalFlip>(registry, "hflip", "Mirror left-right with probability p.",
                                              Schema().add_float("p", 0.5, "probability of flipping"));
  add_component<Augmentation, ColorJitter>(
      registry, "color_jitter", "Random brightness, contrast, saturation and hue in random order (torchvision's ColorJitter).",
      Schema()
          .add_float("brightness", 0.0, "factor drawn from [max(0, 1 - b), 1 + b]")
          .add_float("contrast", 0.0, "factor drawn from [max(0, 1 - c), 1 + c]")
          .add_float("saturation", 0.0, "factor drawn from [max(0, 1 - s), 1 + s] (RGB only)")
          .add_float("hue", 0.0, "shift drawn from [-h, h] turns, h <= 0.5 (RGB only)"));
  add_component<Augmentation, RandomErasing>(
      registry, "random_erasing", "Erase a random rectangle with noise or zeros (Zhong et al.; timm's RandomErasing).",
      Schema()
          .add_float("p", 0.25, "probability of erasing")
          .add_float_list("scale", {0.02, 1.0 / 3.0}, "range of the erased area as a fraction of the image")
          .add_float_list("ratio", {0.3, 3.3}, "range of the erased rectangle's aspect ratio")
          .add_string("value", "random", "fill with uniform noise or zeros", {"random", "zero"}));
  register_randaugment(registry);
}
