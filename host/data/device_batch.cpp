#include "data/device_batch.hpp"

#include "core/errors.hpp"

#include <ssld/rng.hpp>

#include <ATen/ops/ge.h>

namespace ssld::host {

Batch to_device(const HostBatch& host, const DataPipeline& pipeline, c10::Device device, uint64_t seed) {
  Batch batch;
  const bool non_blocking = device.is_cuda() && host.images.is_pinned();
  batch.images = host.images.to(device, at::kFloat, non_blocking);
  batch.labels = host.labels.to(device, non_blocking);
  batch.ids = host.ids.to(device, non_blocking);
  batch.label_mask = batch.labels.ge(0);
  for (const auto& step : pipeline.batch_augmentations) {
    Rng rng(seed, static_cast<uint64_t>(host.epoch), static_cast<uint64_t>(host.step), step.purpose);
    try {
      step.augmentation->apply(batch, rng);
    } catch (const std::exception& error) {
      throw DataError(step.name + " failed on step " + std::to_string(host.step) + " of epoch " +
                      std::to_string(host.epoch) + ": " + error.what());
    }
  }
  return batch;
}

}  // namespace ssld::host
