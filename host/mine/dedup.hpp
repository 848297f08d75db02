// Near-duplicates of protected images (the validation set) among mining candidates, so mined
// images never leak evaluation images into training. Two detectors:
//   perceptual hash: a 64-bit DCT hash of the grayscale 32x32 image (pHash), compared by
//     Hamming distance with each protected image and with its mirror image, so resized,
//     re-encoded and horizontally flipped copies are caught; needs no model. A hash match is
//     confirmed by the correlation of 16x16 thumbnails: on small, look-alike images (28x28
//     Fashion-MNIST) most hash matches are merely similar items, not copies;
//   teacher features: cosine similarity of a named teacher feature (spatially averaged).
// Memory holds the protected set only (a hash pair and optionally a feature row per image).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace ssld::host {

constexpr int kThumbnailSide = 16;

struct ImageHashes {
  uint64_t hash = 0;      // the image as it is
  uint64_t mirrored = 0;  // flipped left-right
  std::vector<float> thumbnail;  // 16x16 grayscale, mean removed, unit length
};

// `image`: uint8 CHW (1 or 3 channels), on the CPU.
ImageHashes perceptual_hashes(const at::Tensor& image);
// Both hashes of every image of a uint8 NCHW batch, computed in parallel.
std::vector<ImageHashes> perceptual_hashes_of_batch(const at::Tensor& images);

int hamming_distance(uint64_t a, uint64_t b);

// One protected image: where it is (for the removed-pairs list).
struct ProtectedImage {
  int32_t source = 0;
  int64_t index = 0;
};

class ProtectedSet {
 public:
  void add(const ProtectedImage& image, const ImageHashes& hashes);
  // Rows of a [N, D...] feature batch, one per image added in the same order.
  void add_features(const at::Tensor& features);

  int64_t size() const { return static_cast<int64_t>(images_.size()); }
  const ProtectedImage& image(int64_t row) const { return images_.at(static_cast<size_t>(row)); }
  bool has_features() const { return !feature_rows_.empty() || features_.defined(); }

  struct HashMatch {
    int64_t row = -1;          // the most correlated protected image among the hash matches; -1: none
    int distance = 64;         // its hash's bits that differ (as-is or mirrored)
    double correlation = 0;    // of the thumbnails (the mirrored one when that matched better)
  };
  // Protected images within max_distance bits (as they are or mirrored) whose thumbnail
  // correlates with the candidate's by at least min_correlation: the best of them.
  HashMatch nearest_by_hash(const ImageHashes& candidate, int max_distance, double min_correlation) const;

  // For each row of `features` [N, D...]: the most similar protected image and the cosine.
  std::pair<at::Tensor, at::Tensor> nearest_by_feature(const at::Tensor& features) const;

 private:
  const at::Tensor& feature_matrix() const;

  std::vector<ProtectedImage> images_;
  std::vector<uint64_t> hashes_;    // interleaved: as-is, mirrored
  std::vector<float> thumbnails_;   // 256 per image
  mutable std::vector<at::Tensor> feature_rows_;  // batches until the first lookup concatenates them
  mutable at::Tensor features_;           // [P, D], rows of unit length
};

// A feature map [N, C, H, W] averaged to [N, C] (any [N, ...] flattened), rows scaled to unit length.
at::Tensor unit_feature_rows(const at::Tensor& features);

}  // namespace ssld::host
