// Small helpers shared by the per-sample augmentations: views of uint8 HWC tensors as cv::Mat,
// resizing as torchvision does on PIL images, cropping with padding, and blending.
#pragma once

#include <ssld/options.hpp>

#include <ATen/core/Tensor.h>
#include <opencv2/core.hpp>

#include <array>
#include <utility>

namespace ssld::augment {

// A cv::Mat header over a contiguous uint8 HWC tensor (no copy).
cv::Mat as_mat(const at::Tensor& image);
at::Tensor new_image(int64_t height, int64_t width, int64_t channels);
// Resampling filters, as PIL (and so torchvision on PIL images) names them.
enum class Interpolation { Nearest, Bilinear, Bicubic, Box, Hamming, Lanczos };

// `image` resized as PIL's Image.resize does it (what torchvision 0.14's Resize, CenterCrop and
// RandomResizedCrop run on PIL images): the filters widened by the scale when shrinking (so they
// antialias), PIL's coefficients in 22-bit fixed point, the horizontal pass rounded to uint8
// before the vertical one; nearest takes source pixel floor((i + 0.5) * in / out). Pixel-exact
// with PIL (tests/unit/augmentations_test.cpp).
at::Tensor resize(const at::Tensor& image, int64_t height, int64_t width, Interpolation interpolation);
// PIL's Image.transform(size, AFFINE, a, resample, fillcolor=fill) (what timm's and torchvision
// 0.14's geometric RandAugment operations run on PIL images): output pixel (x, y) samples the
// input at (a0 x' + a1 y' + a2, a3 x' + a4 y' + a5), x' = x + 0.5, with PIL's nearest (its scale,
// 16.16 fixed-point and floating paths), bilinear and bicubic filters; samples outside the input
// are `fill`. Other filters are refused, as PIL refuses them.
at::Tensor affine_transform(const at::Tensor& image, const std::array<double, 6>& a, Interpolation interpolation,
                            uint8_t fill);
// PIL's Image.rotate(degrees, resample, fillcolor=fill): counter-clockwise about the center,
// same size.
at::Tensor rotate(const at::Tensor& image, double degrees, Interpolation interpolation, uint8_t fill);

// Rows [top, top + height) and columns [left, left + width); areas outside the image are `fill`.
at::Tensor crop(const at::Tensor& image, int64_t top, int64_t left, int64_t height, int64_t width, uint8_t fill = 0);

// The filter an `interpolation` option names; "area" is PIL's box filter (what OpenCV's
// INTER_AREA is for whole-number factors).
Interpolation interpolation_of(const std::string& name);
inline std::vector<std::string> interpolation_names() {
  return {"bilinear", "bicubic", "nearest", "box", "hamming", "lanczos", "area"};
}

// (height, width) from a `size` option of one value (a square) or two.
std::pair<int64_t, int64_t> size_option(const Options& options, const std::string& key);
// A pixel value option (a fill), checked to lie in [0, 255].
uint8_t pixel_option(const Options& options, const std::string& key);
// (low, high) from a two-value float option, checked low <= high.
std::pair<double, double> range_option(const Options& options, const std::string& key);

// Blends two uint8 images: out = a * alpha + b * (1 - alpha), saturated to [0, 255].
void blend(const cv::Mat& a, const cv::Mat& b, double alpha, cv::Mat& out);
// Single-channel luminance replicated to the image's channel count (ITU-R 601, as PIL).
cv::Mat grayscale_like(const cv::Mat& image);

}  // namespace ssld::augment
