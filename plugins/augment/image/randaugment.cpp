// RandAugment as timm's rand_augment_transform("rand-m9-mstd0.5"): for each image, `num_ops`
// operations drawn uniformly from timm's 15, each applied with probability `p` at a magnitude
// drawn from N(magnitude, magnitude_std) clipped to [0, 10]. Magnitudes map to arguments as in
// timm (rotate 30 degrees, shear 0.3, translate 0.45 of the side, enhance 1 +- 0.9 at 10), with
// the increasing-severity variants of posterize and solarize; geometric fills are gray (128).
#include "randaugment.hpp"

#include "image_ops.hpp"

#include <ssld/augmentation.hpp>

#include <opencv2/imgproc.hpp>

#include <array>
#include <cmath>

namespace ssld::augment {
namespace {

enum class Op {
  AutoContrast, Equalize, Invert, Rotate, Posterize, Solarize, SolarizeAdd, Color, Contrast, Brightness, Sharpness,
  ShearX, ShearY, TranslateX, TranslateY
};
constexpr int kOps = 15;

void apply_lut(cv::Mat& image, const std::array<uint8_t, 256>& table) {
  cv::Mat lut(1, 256, CV_8U, const_cast<uint8_t*>(table.data()));
  cv::LUT(image, lut, image);
}

void warp(cv::Mat& image, const cv::Mat& matrix) {
  cv::Mat out;
  cv::warpAffine(image, out, matrix, image.size(), cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar::all(128));
  out.copyTo(image);
}

void per_channel(cv::Mat& image, const std::function<void(cv::Mat&)>& operation) {
  std::vector<cv::Mat> channels;
  cv::split(image, channels);
  for (auto& channel : channels) operation(channel);
  cv::merge(channels, image);
}

void apply_op(Op op, double level, double sign, cv::Mat& image) {  // level in [0, 1]
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
    case Op::Rotate: {
      const cv::Point2f center(image.cols / 2.0f, image.rows / 2.0f);
      warp(image, cv::getRotationMatrix2D(center, sign * 30.0 * level, 1.0));
      break;
    }
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
    case Op::ShearX:
      warp(image, (cv::Mat_<double>(2, 3) << 1, sign * 0.3 * level, 0, 0, 1, 0));
      break;
    case Op::ShearY:
      warp(image, (cv::Mat_<double>(2, 3) << 1, 0, 0, sign * 0.3 * level, 1, 0));
      break;
    case Op::TranslateX:
      warp(image, (cv::Mat_<double>(2, 3) << 1, 0, sign * 0.45 * level * image.cols, 0, 1, 0));
      break;
    case Op::TranslateY:
      warp(image, (cv::Mat_<double>(2, 3) << 1, 0, 0, 0, 1, sign * 0.45 * level * image.rows));
      break;
  }
}

class RandAugment : public Augmentation {
 public:
  RandAugment(const Options& options, const Context&)
      : num_ops_(options.get_int("num_ops")), magnitude_(options.get_float("magnitude")),
        magnitude_std_(options.get_float("magnitude_std")), p_(options.get_float("p")) {
    if (num_ops_ < 0) throw option_error(options, "num_ops", "num_ops must be >= 0");
    if (magnitude_ < 0 || magnitude_ > 10) throw option_error(options, "magnitude", "magnitude must lie in [0, 10]");
  }

  at::Tensor apply(const at::Tensor& image, Rng& rng) const override {
    at::Tensor out = image.clone();
    cv::Mat mat = as_mat(out);
    for (int64_t i = 0; i < num_ops_; ++i) {
      const Op op = static_cast<Op>(rng.randint(0, kOps));
      if (!rng.bernoulli(p_)) continue;
      double magnitude = magnitude_std_ > 0 ? rng.normal(magnitude_, magnitude_std_) : magnitude_;
      magnitude = std::clamp(magnitude, 0.0, 10.0);
      const double sign = rng.bernoulli(0.5) ? 1.0 : -1.0;
      apply_op(op, magnitude / 10.0, sign, mat);
    }
    return out;
  }

 private:
  int64_t num_ops_;
  double magnitude_, magnitude_std_, p_;
};

}  // namespace

void register_randaugment(Registry& registry) {
  add_component<Augmentation, RandAugment>(
      registry, "randaugment", "timm's RandAugment (rand-m9-mstd0.5 with the defaults): num_ops random operations of 15.",
      Schema()
          .add_int("num_ops", 2, "operations per image (timm's n)")
          .add_float("magnitude", 9.0, "magnitude in [0, 10] (timm's m)")
          .add_float("magnitude_std", 0.5, "standard deviation of the per-op magnitude (timm's mstd)")
          .add_float("p", 0.5, "probability of applying each drawn operation"));
}

}  // namespace ssld::augment
