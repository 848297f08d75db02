// Everything that happens to one sample on the CPU: read it from its source, decode it,
// apply the bad-image policy, make it RGB if asked, and run the per-sample augmentations with
// the sample's own random stream. Thread-safe; the loader calls it from many threads.
#pragma once

#include "data/dataset_view.hpp"

#include <ssld/augmentation.hpp>

#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace ssld::host {

struct AugmentationStep {
  std::unique_ptr<Augmentation> augmentation;
  std::string name;  // "augment[0] (random_crop)"
  uint64_t purpose;  // Rng purpose: the step's position and type
};

struct PreparedSample {
  at::Tensor image;  // uint8 HWC, contiguous
  int64_t label = -1;
  uint64_t id = 0;
  std::string origin;    // Sample::origin: a path, or "file#index"
  bool skipped = false;  // a bad image under on_bad_image = "skip"
};

// Bad images seen so far: each is logged once and counted; too many stop the run.
class BadImageLog {
 public:
  // Throws DataError when the policy is "fail" or the source's bad fraction exceeds its limit.
  void record(const DatasetView& source, int32_t source_index, int64_t index, const std::string& origin,
              const std::string& reason);
  int64_t count() const;

 private:
  mutable std::mutex mutex_;
  std::set<std::pair<int32_t, int64_t>> seen_;
  std::vector<int64_t> per_source_;
};

class SamplePipeline {
 public:
  SamplePipeline(std::vector<const DatasetView*> sources, const std::vector<AugmentationStep>& augmentations,
                 uint64_t seed, int64_t reduced_min_side);

  PreparedSample prepare(const SampleRef& ref) const;
  const BadImageLog& bad_images() const { return bad_images_; }

 private:
  // The decoded image of one sample; throws DataError saying what is wrong (the caller adds
  // the path).
  at::Tensor decode(const DatasetView& source, const Sample& sample) const;

  std::vector<const DatasetView*> sources_;
  const std::vector<AugmentationStep>& augmentations_;
  uint64_t seed_;
  int64_t reduced_min_side_;
  mutable BadImageLog bad_images_;
};

}  // namespace ssld::host
