// Small OpenCV helpers shared by the per-sample augmentations: views of uint8 HWC tensors as
// cv::Mat, resizing, cropping with padding, and blending.
#pragma once

#include <ssld/options.hpp>

#include <ATen/core/Tensor.h>
#include <opencv2/core.hpp>

#include <utility>

namespace ssld::augment {

// A cv::Mat header over a contiguous uint8 HWC tensor (no copy).
cv::Mat as_mat(const at::Tensor& image);
at::Tensor new_image(int64_t height, int64_t width, int64_t channels);
at::Tensor resize(const at::Tensor& image, int64_t height, int64_t width, int interpolation);
// Rows [top, top + height) and columns [left, left + width); areas outside the image are `fill`.
at::Tensor crop(const at::Tensor& image, int64_t top, int64_t left, int64_t height, int64_t width, uint8_t fill = 0);

// OpenCV's interpolation flag for an option value ("bilinear", "bicubic", "nearest", "area").
int interpolation_flag(const std::string& name);
inline std::vector<std::string> interpolation_names() { return {"bilinear", "bicubic", "nearest", "area"}; }

// (height, width) from a `size` option of one value (a square) or two.
std::pair<int64_t, int64_t> size_option(const Options& options, const std::string& key);
// (low, high) from a two-value float option, checked low <= high.
std::pair<double, double> range_option(const Options& options, const std::string& key);

// Blends two uint8 images: out = a * alpha + b * (1 - alpha), saturated to [0, 255].
void blend(const cv::Mat& a, const cv::Mat& b, double alpha, cv::Mat& out);
// Single-channel luminance replicated to the image's channel count (ITU-R 601, as PIL).
cv::Mat grayscale_like(const cv::Mat& image);

}  // namespace ssld::augment
