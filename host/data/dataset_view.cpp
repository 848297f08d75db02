#include "data/dataset_view.hpp"

#include <ssld/error.hpp>
#include <ssld/rng.hpp>

#include <cmath>
#include <numeric>

namespace ssld::host {

DatasetView::DatasetView(std::unique_ptr<Dataset> dataset, SourceSettings settings)
    : dataset_(std::move(dataset)), settings_(std::move(settings)) {}

int64_t DatasetView::base_index(int64_t index) const {
  return settings_.subset.empty() ? index : settings_.subset[static_cast<size_t>(index)];
}

int64_t DatasetView::size() const {
  return settings_.subset.empty() ? dataset_->size() : static_cast<int64_t>(settings_.subset.size());
}

Sample DatasetView::get(int64_t index) const {
  Sample sample = dataset_->get(base_index(index));
  if (settings_.drop_labels) sample.label = -1;
  return sample;
}

int64_t DatasetView::label_of(int64_t index) const {
  return settings_.drop_labels ? -1 : dataset_->label_of(base_index(index));
}

int64_t DatasetView::num_classes() const { return settings_.drop_labels ? 0 : dataset_->num_classes(); }

std::vector<std::string> DatasetView::class_names() const { return dataset_->class_names(); }

std::string DatasetView::identity() const {
  return dataset_->identity() + "|subset:" + settings_.subset_description +
         (settings_.drop_labels ? "|unlabeled" : "") + (settings_.grayscale_to_rgb ? "|rgb" : "") +
         (settings_.grayscale ? "|gray" : "");
}

std::vector<int64_t> subset_indices(const SubsetSpec& spec, int64_t size, std::string& description) {
  std::vector<int64_t> order(static_cast<size_t>(size));
  std::iota(order.begin(), order.end(), 0);
  if (spec.shuffled) {  // the same split in every run with the same seed
    Rng rng(static_cast<uint64_t>(spec.seed), 0, 0, Rng::purpose_of("subset"));
    for (int64_t i = size - 1; i > 0; --i) std::swap(order[i], order[rng.randint(0, i + 1)]);
  }
  int64_t begin = 0, end = size;
  if (!spec.range.empty() && !spec.fraction.empty())
    throw Error("subset takes either `range` or `fraction`, not both");
  if (!spec.range.empty()) {
    if (spec.range.size() != 2 || spec.range[0] < 0 || spec.range[0] > spec.range[1] || spec.range[1] > size)
      throw Error("subset range must be [begin, end] with 0 <= begin <= end <= " + std::to_string(size) +
                  " (the dataset's size)");
    begin = spec.range[0];
    end = spec.range[1];
  } else if (!spec.fraction.empty()) {
    if (spec.fraction.size() != 2 || spec.fraction[0] < 0 || spec.fraction[0] > spec.fraction[1] || spec.fraction[1] > 1)
      throw Error("subset fraction must be [from, to] with 0 <= from <= to <= 1");
    begin = std::llround(spec.fraction[0] * static_cast<double>(size));
    end = std::llround(spec.fraction[1] * static_cast<double>(size));
  } else if (!spec.shuffled) {
    throw Error("subset needs `range = [begin, end]` or `fraction = [from, to]`");
  }
  if (begin == end) throw Error("subset selects no sample");
  description = (spec.shuffled ? "seed " + std::to_string(spec.seed) + " " : std::string()) + std::to_string(begin) +
                ":" + std::to_string(end) + " of " + std::to_string(size);
  return std::vector<int64_t>(order.begin() + begin, order.begin() + end);
}

}  // namespace ssld::host
