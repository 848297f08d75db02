// RandAugment as timm's rand_augment_transform("rand-m9-mstd0.5"): for each image, `num_ops`
// operations drawn uniformly from timm's 15, each applied with probability `p` at a magnitude
// drawn from N(magnitude, magnitude_std) clipped to [0, 10]. Magnitudes map to arguments as in
// timm (rotate 30 degrees, shear 0.3, translate 0.45 of the side, enhance 1 +- 0.9 at 10), with
// the increasing-severity variants of posterize and solarize. The geometric operations are
// timm's PIL calls, pixel for pixel (image_ops' affine_transform and rotate): shear and translate
// as Image.transform(AFFINE), rotate as Image.rotate, resampled with `interpolation` (timm's
// "random" picks bilinear or bicubic per operation) and filled with `fill`.
#include "randaugment.hpp"

#include "image_ops.hpp"

#include <ssld/augmentation.hpp>

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <cmath>

namespace ssld::augment {
namespace {

enum class Op {
  AutoContrast, Equalize, Invert, Rotate, Posterize, Solarize, SolarizeAdd, Color, Contrast, Brightness, Sharpness,
  ShearX, ShearY, TranslateX, TranslateY
};
constexpr int kOps = 15;
// timm's names, in Op's order.
const std::array<const char*, kOps> kOpNames = {
    "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color",
    "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"};

void apply_lut(cv::Mat& image, const std::array<uint8_t, 256>& table) {
  cv::Mat lut(1, 256, CV_8U, const_cast<uint8_t*>(table.data()));
  cv::LUT(image, lut, image);
}

void per_channel(cv::Mat& image, const std::function<void(cv::Mat&)>& operation) {
  std::vector<cv::Mat> channels;
  cv::split(image, channels);
  for (auto& channel : channels) operation(channel);
  cv::merge(channels, image);
}

void apply_colour_op(Op op, double level, double sign, cv::Mat& image) {
  const double enhance = 1.0 + sign * 0.9 * level;
  std::array<uint8_t, 256> table{};
  switch (op) {
    case Op::AutoContrast:
      per_channel(image, [](cv::Mat& channel) {
        double low, high;
        cv::minMaxLoc(channel, &low, &high);
        if (high > low) channel.convertTo(channel, CV_8U, 255.0 / (high - low), -low * 255.0 / (high - low));
      });
      break;
    case Op::Equalize:
      per_channel(image, [](cv::Mat& channel) { cv::equalizeHist(channel, channel); });
      break;
    case Op::Invert:
      cv::bitwise_not(image, image);
      break;
    case Op::Posterize: {
      const int bits = 8 - static_cast<int>(level * 4);  // 8 (no change) .. 4
      const uint8_t mask = static_cast<uint8_t>(0xFF << (8 - bits));
      for (int v = 0; v < 256; ++v) table[v] = static_cast<uint8_t>(v & mask);
      apply_lut(image, table);
      break;
    }
    case Op::Solarize: {
      const int threshold = 256 - static_cast<int>(level * 256);
      for (int v = 0; v < 256; ++v) table[v] = static_cast<uint8_t>(v < threshold ? v : 255 - v);
      apply_lut(image, table);
      break;
    }
    case Op::SolarizeAdd: {
      const int add = static_cast<int>(level * 110);
      for (int v = 0; v < 256; ++v) table[v] = static_cast<uint8_t>(v < 128 ? std::min(255, v + add) : v);
      apply_lut(image, table);
      break;
    }
    case Op::Color:
      blend(image, grayscale_like(image), enhance, image);
      break;
    case Op::Contrast: {
      const cv::Mat gray = grayscale_like(image);
      image.convertTo(image, CV_8U, enhance, (1 - enhance) * cv::mean(gray)[0]);
      break;
    }
    case Op::Brightness:
      image.convertTo(image, CV_8U, enhance);
      break;
    case Op::Sharpness: {  // PIL's SMOOTH kernel as the "blurred" end of the blend
      cv::Mat smooth;
      const cv::Mat kernel = (cv::Mat_<float>(3, 3) << 1, 1, 1, 1, 5, 1, 1, 1, 1) / 13.0f;
      cv::filter2D(image, smooth, -1, kernel, cv::Point(-1, -1), 0, cv::BORDER_REPLICATE);
      blend(image, smooth, enhance, image);
      break;
    }
    default:  // the geometric operations: apply_op
      break;
  }
}

struct Geometry {  // how the geometric operations resample
  Interpolation interpolation;
  uint8_t fill;
};

// `image` after operation `op` at `level` in [0, 1]; the colour operations work in place.
at::Tensor apply_op(Op op, double level, double sign, const Geometry& geometry, at::Tensor image) {
  const auto transform = [&](double a0, double a1, double a2, double a3, double a4, double a5) {
    return affine_transform(image, {a0, a1, a2, a3, a4, a5}, geometry.interpolation, geometry.fill);
  };
  const double width = static_cast<double>(image.size(1)), height = static_cast<double>(image.size(0));
  switch (op) {
    case Op::Rotate:
      return rotate(image, sign * 30.0 * level, geometry.interpolation, geometry.fill);
    case Op::ShearX:
      return transform(1, sign * 0.3 * level, 0, 0, 1, 0);
    case Op::ShearY:
      return transform(1, 0, 0, sign * 0.3 * level, 1, 0);
    case Op::TranslateX:
      return transform(1, 0, sign * 0.45 * level * width, 0, 1, 0);
    case Op::TranslateY:
      return transform(1, 0, 0, 0, 1, sign * 0.45 * level * height);
    default:
      break;
  }
  cv::Mat mat = as_mat(image);
  apply_colour_op(op, level, sign, mat);
  return image;
}

class RandAugment : public Augmentation {
 public:
  RandAugment(const Options& options, const Context&)
      : num_ops_(options.get_int("num_ops")), magnitude_(options.get_float("magnitude")),
        magnitude_std_(options.get_float("magnitude_std")), p_(options.get_float("p")),
        random_interpolation_(options.get_string("interpolation") == "random"),
        geometry_{interpolation_of(options.get_string("interpolation")), pixel_option(options, "fill")} {
    if (num_ops_ < 0) throw option_error(options, "num_ops", "num_ops must be >= 0");
    if (magnitude_ < 0 || magnitude_ > 10) throw option_error(options, "magnitude", "magnitude must lie in [0, 10]");
    for (const std::string& name : options.get_string_list("ops")) {
      const auto found = std::find(kOpNames.begin(), kOpNames.end(), name);
      if (found == kOpNames.end()) {
        std::string known;
        for (const char* op : kOpNames) known += std::string(known.empty() ? "" : ", ") + op;
        throw option_error(options, "ops", "unknown operation '" + name + "' (known: " + known + ")");
      }
      ops_.push_back(static_cast<Op>(found - kOpNames.begin()));
    }
    if (ops_.empty()) throw option_error(options, "ops", "ops must name at least one operation");
  }

  at::Tensor apply(const at::Tensor& image, Rng& rng) const override {
    at::Tensor out = image.clone();
    for (int64_t i = 0; i < num_ops_; ++i) {
      const Op op = ops_[static_cast<size_t>(rng.randint(0, static_cast<int64_t>(ops_.size())))];
      if (!rng.bernoulli(p_)) continue;
      double magnitude = magnitude_std_ > 0 ? rng.normal(magnitude_, magnitude_std_) : magnitude_;
      magnitude = std::clamp(magnitude, 0.0, 10.0);
      const double sign = rng.bernoulli(0.5) ? 1.0 : -1.0;
      Geometry geometry = geometry_;
      if (random_interpolation_)
        geometry.interpolation = rng.bernoulli(0.5) ? Interpolation::Bilinear : Interpolation::Bicubic;
      out = apply_op(op, magnitude / 10.0, sign, geometry, out);
    }
    return out;
  }

 private:
  int64_t num_ops_;
  double magnitude_, magnitude_std_, p_;
  bool random_interpolation_;
  Geometry geometry_;
  std::vector<Op> ops_;
};

}  // namespace

void register_randaugment(Registry& registry) {
  add_component<Augmentation, RandAugment>(
      registry, "randaugment", "timm's RandAugment (rand-m9-mstd0.5 with the defaults): num_ops random operations of ops (timm's 15).",
      Schema()
          .add_int("num_ops", 2, "operations per image (timm's n)")
          .add_float("magnitude", 9.0, "magnitude in [0, 10] (timm's m)")
          .add_float("magnitude_std", 0.5, "standard deviation of the per-op magnitude (timm's mstd)")
          .add_float("p", 0.5, "probability of applying each drawn operation")
          .add_string_list("ops", std::vector<std::string>(kOpNames.begin(), kOpNames.end()),
                           "the operations drawn from (timm's names)")
          .add_string("interpolation", "random",
                      "resampling of rotate, shear and translate (random: bilinear or bicubic per operation, as timm)",
                      {"random", "bilinear", "bicubic", "nearest"})
          .add_int("fill", 128, "value of the pixels rotate, shear and translate bring in"));
}

}  // namespace ssld::augment
