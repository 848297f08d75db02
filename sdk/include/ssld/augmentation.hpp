// Augmentations: per-sample transforms on the CPU (uint8 in, uint8 out) and batch transforms
// on the device (normalize, mixup, cutmix). Randomness comes only from the ssld::Rng handed in, never a global generator.
#pragma once

#include <ssld/component.hpp>
#include <ssld/rng.hpp>

#include <ATen/core/Tensor.h>

namespace ssld {

class Augmentation : public Component {
 public:
  // `image`: uint8 HWC, contiguous, on the CPU; returns the same layout. Called from many
  // loader threads at once with a different rng each: must not mutate shared state.
  virtual at::Tensor apply(const at::Tensor& image, Rng& rng) const = 0;
};

// A batch as both the teacher and the student will see it.
struct Batch {
  at::Tensor images;      // float NCHW on the device; values in [0, 255] until `normalize` runs
  at::Tensor labels;      // int64 [N], -1 unlabeled
  at::Tensor label_mask;  // bool [N]
  at::Tensor ids;         // int64 [N], Sample::id
  // Set by mixing augmentations (mixup, cutmix): sample i was blended with sample
  // mix_index[i] with weight mix_lambda[i] on its own content. Undefined when nothing mixed.
  at::Tensor mix_index;
  at::Tensor mix_lambda;
};

class BatchAugmentation : public Component {
 public:
  virtual void apply(Batch& batch, Rng& rng) const = 0;
};

}  // namespace ssld
