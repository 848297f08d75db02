#include "image_ops.hpp"

#include <ssld/error.hpp>

#include <ATen/ops/empty.h>

#include <opencv2/imgproc.hpp>

namespace ssld::augment {

cv::Mat as_mat(const at::Tensor& image) {
  return cv::Mat(static_cast<int>(image.size(0)), static_cast<int>(image.size(1)),
                 CV_8UC(static_cast<int>(image.size(2))), image.data_ptr<uint8_t>());
}

at::Tensor new_image(int64_t height, int64_t width, int64_t channels) {
  return at::empty({height, width, channels}, at::kByte);
}

at::Tensor resize(const at::Tensor& image, int64_t height, int64_t width, int interpolation) {
  if (image.size(0) == height && image.size(1) == width) return image;
  at::Tensor out = new_image(height, width, image.size(2));
  cv::Mat destination = as_mat(out);
  cv::resize(as_mat(image), destination, destination.size(), 0, 0, interpolation);
  return out;
}

at::Tensor crop(const at::Tensor& image, int64_t top, int64_t left, int64_t height, int64_t width, uint8_t fill) {
  const int64_t rows = image.size(0), cols = image.size(1);
  if (top >= 0 && left >= 0 && top + height <= rows && left + width <= cols)
    return image.slice(0, top, top + height).slice(1, left, left + width).contiguous();
  at::Tensor out = new_image(height, width, image.size(2)).fill_(fill);
  const int64_t y0 = std::max<int64_t>(top, 0), y1 = std::min(top + height, rows);
  const int64_t x0 = std::max<int64_t>(left, 0), x1 = std::min(left + width, cols);
  if (y0 < y1 && x0 < x1)
    out.slice(0, y0 - top, y1 - top).slice(1, x0 - left, x1 - left).copy_(image.slice(0, y0, y1).slice(1, x0, x1));
  return out;
}

int interpolation_flag(const std::string& name) {
  if (name == "bicubic") return cv::INTER_CUBIC;
  if (name == "nearest") return cv::INTER_NEAREST;
  if (name == "area") return cv::INTER_AREA;
  return cv::INTER_LINEAR;
}

std::pair<int64_t, int64_t> size_option(const Options& options, const std::string& key) {
  const auto size = options.get_int_list(key);
  if (size.empty() || size.size() > 2 || size[0] <= 0 || size.back() <= 0)
    throw option_error(options, key, key + " must be [side] or [height, width], positive");
  return {size[0], size.back()};
}

std::pair<double, double> range_option(const Options& options, const std::string& key) {
  const auto range = options.get_float_list(key);
  if (range.size() != 2 || range[0] > range[1]) throw option_error(options, key, key + " must be [low, high] with low <= high");
  return {range[0], range[1]};
}

void blend(const cv::Mat& a, const cv::Mat& b, double alpha, cv::Mat& out) {
  cv::addWeighted(a, alpha, b, 1.0 - alpha, 0.0, out);  // saturating for CV_8U
}

cv::Mat grayscale_like(const cv::Mat& image) {
  if (image.channels() == 1) return image.clone();
  cv::Mat gray, replicated;
  cv::cvtColor(image, gray, cv::COLOR_RGB2GRAY);
  cv::cvtColor(gray, replicated, cv::COLOR_GRAY2RGB);
  return replicated;
}

}  // namespace ssld::augment
