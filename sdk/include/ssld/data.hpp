// The data side: datasets give random access to samples, samplers decide which samples form
// each batch. Both are deterministic functions of their inputs, which makes resume exact.
#pragma once

#include <ssld/component.hpp>

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace ssld {

struct Sample {
  std::vector<uint8_t> encoded;  // an encoded image file (JPEG, PNG, ...) to be decoded, or
  at::Tensor image;              // an already decoded uint8 HWC tensor (IDX files)
  int64_t label = -1;            // -1: unlabeled
  uint64_t id = 0;               // stable across runs; keys random streams and caches
  std::string origin;            // a path or "file#index", for error messages
};

class Dataset : public Component {
 public:
  virtual int64_t size() const = 0;
  // Thread-safe: the loader calls it from many threads at once.
  virtual Sample get(int64_t index) const = 0;
  // The label of a sample without reading its image (class-balanced sampling); -1: none.
  virtual int64_t label_of(int64_t index) const = 0;
  virtual int64_t num_classes() const = 0;  // 0 when the dataset carries no labels
  virtual std::vector<std::string> class_names() const { return {}; }
  // Names the content (files, subset, seed): soft-label caches are keyed by it.
  virtual std::string identity() const = 0;
};

// One draw of a sample of one of the sampler's sources. `pass` counts how many times the
// sampler has cycled through that source (its own epoch): (source, index, pass) never repeats
// within a run, and keys the sample's random augmentation stream.
struct SampleRef {
  int32_t source = 0;
  int64_t index = 0;
  int64_t pass = 0;
};

struct SamplerSetup {
  std::vector<const Dataset*> sources;  // e.g. {labeled, unlabeled}; outlive the sampler
  int64_t batch_size = 1;               // per rank
  int64_t rank = 0;
  int64_t world_size = 1;
  uint64_t seed = 0;
};

// Batches as a pure function of (epoch, step): every rank gets the same number of steps and,
// across ranks, each index of an epoch exactly once (a training sampler may drop the last
// incomplete global batch; an evaluation sampler covers everything, so its last batches can
// be smaller, or empty on some ranks).
class Sampler : public Component {
 public:
  // Called once before any other method.
  virtual void bind(const SamplerSetup& setup) = 0;
  virtual int64_t steps_per_epoch() const = 0;
  // This rank's batch; thread-safe.
  virtual std::vector<SampleRef> batch(int64_t epoch, int64_t step) const = 0;
  // Extra state a checkpoint must keep beyond (epoch, step); most samplers have none.
  virtual std::string state() const { return {}; }
  virtual void load_state(const std::string& state) { (void)state; }
};

}  // namespace ssld
