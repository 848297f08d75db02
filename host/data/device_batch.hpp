// The device half of a step's data: the uint8 batch is copied to the device (asynchronously
// from pinned memory), converted to float there, and the batch augmentations run on it, so
// 1 byte per pixel crosses the bus, not 4. Teacher and student then see this same tensor.
#pragma once

#include "data/data_config.hpp"
#include "data/loader.hpp"

#include <ssld/augmentation.hpp>

namespace ssld::host {

Batch to_device(const HostBatch& host, const DataPipeline& pipeline, c10::Device device, uint64_t seed);

}  // namespace ssld::host
