// A configured source: a dataset plugin seen through the options every dataset shares
// (subset, drop_labels, grayscale_to_rgb, the bad-image policy). Samplers and the loader only
// ever see views, so these options work the same for every dataset plugin.
#pragma once

#include "config/settings_table.hpp"
#include "data/image_decode.hpp"

#include <ssld/data.hpp>

#include <memory>
#include <string>
#include <vector>

namespace ssld::host {

enum class BadImagePolicy { Fail, Skip, Replace };
extern const EnumNames<BadImagePolicy> kBadImagePolicyNames;

// The defaults here are a data source's host-key defaults (data_config.cpp's table documents them).

struct SourceSettings {
  std::string label;                 // "data.train.sources[1] (idx)", for messages
  std::vector<int64_t> subset;       // indices into the dataset; empty: all of it
  std::string subset_description;    // part of identity(): "range 0:10000", ...
  bool drop_labels = false;
  bool grayscale_to_rgb = false;
  bool grayscale = false;  // RGB to one channel (image files decode to RGB)
  BadImagePolicy on_bad_image = BadImagePolicy::Replace;
  double max_bad_fraction = 0.01;
  int64_t max_image_pixels = kDefaultMaxImagePixels;
};

class DatasetView : public Dataset {
 public:
  DatasetView(std::unique_ptr<Dataset> dataset, SourceSettings settings);

  int64_t size() const override;
  Sample get(int64_t index) const override;
  int64_t label_of(int64_t index) const override;
  int64_t num_classes() const override;
  std::vector<std::string> class_names() const override;
  std::string identity() const override;

  const SourceSettings& settings() const { return settings_; }

 private:
  int64_t base_index(int64_t index) const;

  std::unique_ptr<Dataset> dataset_;
  SourceSettings settings_;
};

// The indices a subset table selects from `size` samples: `range = [begin, end]` or
// `fraction = [from, to]`, after a seeded shuffle when `seed` is given. Throws ssld::Error.
struct SubsetSpec {
  std::vector<int64_t> range;
  std::vector<double> fraction;
  bool shuffled = false;
  int64_t seed = 0;
};
std::vector<int64_t> subset_indices(const SubsetSpec& spec, int64_t size, std::string& description);

}  // namespace ssld::host
