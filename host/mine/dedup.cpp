#include "mine/dedup.hpp"

#include <ATen/ATen.h>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>

namespace ssld::host {

namespace {

// pHash of a 32x32 float grayscale image: the 8x8 lowest DCT frequencies against their median
// (the DC term, the mean brightness, is left out of the median so it cannot dominate it).
uint64_t dct_hash(const cv::Mat& gray32) {
  cv::Mat frequencies;
  cv::dct(gray32, frequencies);
  std::array<float, 64> low{};
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x) low[static_cast<size_t>(y * 8 + x)] = frequencies.at<float>(y, x);
  std::array<float, 63> ac{};
  std::copy(low.begin() + 1, low.end(), ac.begin());
  std::nth_element(ac.begin(), ac.begin() + 31, ac.end());
  const float median = ac[31];
  uint64_t hash = 0;
  for (size_t i = 0; i < 64; ++i)
    if (low[i] > median) hash |= uint64_t{1} << i;
  return hash;
}

}  // namespace

ImageHashes perceptual_hashes(const at::Tensor& image) {
  if (image.dim() != 3 || image.scalar_type() != at::kByte || !image.device().is_cpu())
    throw std::invalid_argument("perceptual_hashes: expected a uint8 CHW image on the CPU");
  const at::Tensor hwc = image.permute({1, 2, 0}).contiguous();
  const int channels = static_cast<int>(hwc.size(2));
  cv::Mat mat(static_cast<int>(hwc.size(0)), static_cast<int>(hwc.size(1)), CV_8UC(channels), hwc.data_ptr<uint8_t>());
  cv::Mat gray;
  if (channels == 3) cv::cvtColor(mat, gray, cv::COLOR_RGB2GRAY);
  else if (channels == 1) gray = mat;
  else if (channels == 4) cv::cvtColor(mat, gray, cv::COLOR_RGBA2GRAY);
  else throw std::invalid_argument("perceptual_hashes: images with " + std::to_string(channels) + " channels");
  cv::Mat small, small_float, mirrored, thumbnail;
  cv::resize(gray, small, cv::Size(32, 32), 0, 0, cv::INTER_AREA);
  small.convertTo(small_float, CV_32F);
  cv::flip(small_float, mirrored, 1);
  ImageHashes hashes{dct_hash(small_float), dct_hash(mirrored), {}};
  cv::resize(small_float, thumbnail, cv::Size(kThumbnailSide, kThumbnailSide), 0, 0, cv::INTER_AREA);
  hashes.thumbnail.assign(thumbnail.begin<float>(), thumbnail.end<float>());
  double mean = 0, norm = 0;
  for (const float v : hashes.thumbnail) mean += v;
  mean /= double(hashes.thumbnail.size());
  for (float& v : hashes.thumbnail) norm += (v -= float(mean)) * double(v);
  const float scale = norm > 1e-6 ? float(1.0 / std::sqrt(norm)) : 0.0f;  // a flat image correlates with nothing
  for (float& v : hashes.thumbnail) v *= scale;
  return hashes;
}

std::vector<ImageHashes> perceptual_hashes_of_batch(const at::Tensor& images) {
  std::vector<ImageHashes> hashes(static_cast<size_t>(images.size(0)));
  const at::Tensor cpu = images.cpu();
  tbb::parallel_for(int64_t{0}, cpu.size(0), [&](int64_t i) { hashes[static_cast<size_t>(i)] = perceptual_hashes(cpu[i]); });
  return hashes;
}

int hamming_distance(uint64_t a, uint64_t b) { return __builtin_popcountll(a ^ b); }

void ProtectedSet::add(const ProtectedImage& image, const ImageHashes& hashes) {
  images_.push_back(image);
  hashes_.push_back(hashes.hash);
  hashes_.push_back(hashes.mirrored);
  thumbnails_.insert(thumbnails_.end(), hashes.thumbnail.begin(), hashes.thumbnail.end());
}

void ProtectedSet::add_features(const at::Tensor& features) {
  if (features_.defined()) feature_rows_.push_back(features_);
  features_ = at::Tensor();
  feature_rows_.push_back(unit_feature_rows(features));
}

ProtectedSet::HashMatch ProtectedSet::nearest_by_hash(const ImageHashes& candidate, int max_distance,
                                                      double min_correlation) const {
  constexpr size_t kPixels = kThumbnailSide * kThumbnailSide;
  HashMatch match;
  for (size_t i = 0; i < hashes_.size(); ++i) {
    const int distance = hamming_distance(candidate.hash, hashes_[i]);
    if (distance > max_distance) continue;
    // Odd entries are mirrored hashes: compare the candidate with the mirrored thumbnail.
    const float* thumbnail = thumbnails_.data() + (i / 2) * kPixels;
    double correlation = 0;
    for (size_t y = 0; y < size_t(kThumbnailSide); ++y)
      for (size_t x = 0; x < size_t(kThumbnailSide); ++x) {
        const size_t column = i % 2 ? size_t(kThumbnailSide) - 1 - x : x;
        correlation += double(candidate.thumbnail[y * kThumbnailSide + x]) * thumbnail[y * kThumbnailSide + column];
      }
    if (correlation >= min_correlation && correlation > match.correlation) {
      match = HashMatch{static_cast<int64_t>(i / 2), distance, correlation};
    }
  }
  return match;
}

const at::Tensor& ProtectedSet::feature_matrix() const {
  if (!features_.defined()) {
    if (feature_rows_.empty()) throw std::logic_error("the protected set has no features");
    features_ = at::cat(feature_rows_, 0);
    feature_rows_.clear();
  }
  return features_;
}

std::pair<at::Tensor, at::Tensor> ProtectedSet::nearest_by_feature(const at::Tensor& features) const {
  const at::Tensor& protected_features = feature_matrix();
  const at::Tensor rows = unit_feature_rows(features).to(protected_features.device());
  if (rows.size(1) != protected_features.size(1))
    throw std::runtime_error("teacher features of " + std::to_string(rows.size(1)) + " values, the protected set's have " +
                             std::to_string(protected_features.size(1)));
  const auto [cosine, row] = at::matmul(rows, protected_features.t()).max(1);
  return {row.cpu(), cosine.cpu()};
}

at::Tensor unit_feature_rows(const at::Tensor& features) {
  at::Tensor rows = features.dim() > 2 ? features.flatten(2).mean(2) : features.reshape({features.size(0), -1});
  rows = rows.to(at::kFloat);
  return rows / rows.norm(2, {1}, true).clamp_min(1e-12);
}

}  // namespace ssld::host
