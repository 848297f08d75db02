#include "data/sample_pipeline.hpp"

#include "core/errors.hpp"
#include "data/image_decode.hpp"

#include <spdlog/spdlog.h>

namespace ssld::host {

namespace {
constexpr int kReplacementAttempts = 16;
}

void BadImageLog::record(const DatasetView& source, int32_t source_index, int64_t index, const std::string& origin,
                         const std::string& reason) {
  const SourceSettings& settings = source.settings();
  if (settings.on_bad_image == BadImagePolicy::Fail)
    throw DataError(origin + " " + reason + " (" + settings.label +
                    ", on_bad_image = \"fail\"; use \"skip\" or \"replace\" to train past bad files)");
  std::lock_guard<std::mutex> lock(mutex_);
  if (!seen_.insert({source_index, index}).second) return;  // logged and counted already
  if (per_source_.size() <= static_cast<size_t>(source_index)) per_source_.resize(source_index + 1, 0);
  const int64_t bad = ++per_source_[source_index];
  spdlog::warn("bad image {} {} ({}; {} bad so far)", origin, reason, settings.label, bad);
  const double fraction = static_cast<double>(bad) / static_cast<double>(std::max<int64_t>(1, source.size()));
  if (fraction > settings.max_bad_fraction)
    throw DataError(std::to_string(bad) + " of the " + std::to_string(source.size()) + " images of " + settings.label +
                    " are bad (more than max_bad_fraction = " + std::to_string(settings.max_bad_fraction) +
                    "); the last: " + origin + " " + reason + ". Check the data, or raise max_bad_fraction.");
}

int64_t BadImageLog::count() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int64_t>(seen_.size());
}

SamplePipeline::SamplePipeline(std::vector<const DatasetView*> sources, const std::vector<AugmentationStep>& augmentations,
                               uint64_t seed, int64_t reduced_min_side)
    : sources_(std::move(sources)), augmentations_(augmentations), seed_(seed), reduced_min_side_(reduced_min_side) {}

at::Tensor SamplePipeline::decode(const DatasetView& source, const Sample& sample) const {
  at::Tensor image = sample.image;
  if (!image.defined()) {
    image = decode_image(sample.encoded, reduced_min_side_, source.settings().max_image_pixels);
  } else if (image.dim() != 3 || image.scalar_type() != at::kByte) {
    throw DataError("was given by " + source.settings().label + " as a tensor that is not uint8 HWC");
  }
  if (source.settings().grayscale_to_rgb && image.size(2) == 1) image = image.expand({-1, -1, 3});
  if (source.settings().grayscale && image.size(2) == 3) image = rgb_to_grayscale(image);
  return image.contiguous();
}

PreparedSample SamplePipeline::prepare(const SampleRef& ref) const {
  const DatasetView& source = *sources_.at(static_cast<size_t>(ref.source));
  PreparedSample prepared;
  at::Tensor image;
  Sample sample;
  for (int attempt = 0; attempt <= kReplacementAttempts && !image.defined(); ++attempt) {
    // A bad image is replaced by the next good index: deterministic, so every rank and every
    // rerun sees the same substitute, and the batch keeps its size.
    const int64_t index = (ref.index + attempt) % source.size();
    std::string origin = source.settings().label + "#" + std::to_string(index);
    try {
      sample = source.get(index);
      origin = sample.origin;
      image = decode(source, sample);
    } catch (const DataError& error) {
      bad_images_.record(source, ref.source, index, origin, error.what());
    } catch (const std::exception& error) {
      bad_images_.record(source, ref.source, index, origin, std::string("cannot be read: ") + error.what());
    }
    if (!image.defined() && source.settings().on_bad_image == BadImagePolicy::Skip) {
      prepared.skipped = true;
      return prepared;
    }
  }
  if (!image.defined())
    throw DataError(std::to_string(kReplacementAttempts) + " images after " + source.settings().label + "#" +
                    std::to_string(ref.index) + " are all bad; no replacement found");

  for (const auto& step : augmentations_) {
    Rng rng(seed_, static_cast<uint64_t>(ref.pass), sample.id, step.purpose);
    try {
      image = step.augmentation->apply(image, rng);
    } catch (const std::exception& error) {
      throw DataError(step.name + " failed on " + sample.origin + ": " + error.what());
    }
    if (!image.defined() || image.dim() != 3 || image.scalar_type() != at::kByte)
      throw DataError(step.name + " returned something other than a uint8 HWC image for " + sample.origin);
    image = image.contiguous();
  }
  prepared.image = image;
  prepared.label = sample.label;
  prepared.id = sample.id;
  prepared.origin = sample.origin;
  return prepared;
}

}  // namespace ssld::host
