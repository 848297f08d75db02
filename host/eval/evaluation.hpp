// Top-1 / top-5 accuracy of a model over a data pipeline's labeled samples (one epoch of its
// sampler, normally `sequential` on data.val). Used after training epochs and by `ssld eval`.
#pragma once

#include "data/data_config.hpp"

#include <functional>

namespace ssld::host {

class DistContext;

struct Accuracy {
  double top1 = 0;  // percent
  double top5 = 0;
  int64_t samples = 0;  // labeled samples counted
};

// Called per batch with the predicted logits and where each row's image came from, e.g. to
// write per-sample predictions.
using PredictionSink =
    std::function<void(const ssld::Batch& batch, const at::Tensor& logits, const std::vector<std::string>& origins)>;

// With `dist` (a data-parallel run), each rank evaluates its shard of the pipeline and the
// counts are summed over ranks: every rank returns the accuracy on the whole set.
Accuracy evaluate(const DataPipeline& pipeline, c10::Device device, uint64_t seed,
                  const std::function<at::Tensor(const at::Tensor& images)>& predict,
                  const PredictionSink& sink = nullptr, DistContext* dist = nullptr);

}  // namespace ssld::host
