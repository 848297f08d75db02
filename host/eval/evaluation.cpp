#include "eval/evaluation.hpp"

#include "data/device_batch.hpp"
#include "data/loader.hpp"
#include "dist/process_group.hpp"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

namespace ssld::host {

Accuracy evaluate(const DataPipeline& pipeline, c10::Device device, uint64_t seed,
                  const std::function<at::Tensor(const at::Tensor& images)>& predict, const PredictionSink& sink,
                  DistContext* dist) {
  c10::NoGradGuard no_grad;
  Loader loader(*pipeline.samples, *pipeline.sampler, pipeline.loader);
  loader.start(0);
  int64_t correct1 = 0, correct5 = 0, counted = 0;
  while (auto host_batch = loader.next()) {
    if (host_batch->images.size(0) == 0) continue;
    const Batch batch = to_device(*host_batch, pipeline, device, seed);
    const at::Tensor logits = predict(batch.images);
    if (sink) sink(batch, logits, host_batch->origins);
    const at::Tensor mask = batch.label_mask;
    const int64_t k = std::min<int64_t>(5, logits.size(1));
    const at::Tensor top = std::get<1>(logits.topk(k, 1));
    const at::Tensor hits = top.eq(batch.labels.unsqueeze(1)) & mask.unsqueeze(1);
    correct1 += hits.select(1, 0).sum().item<int64_t>();
    correct5 += hits.any(1).sum().item<int64_t>();
    counted += mask.sum().item<int64_t>();
  }
  if (dist) {
    const auto totals = dist->sum({correct1, correct5, counted});
    correct1 = totals[0];
    correct5 = totals[1];
    counted = totals[2];
  }
  Accuracy accuracy;
  accuracy.samples = counted;
  if (counted > 0) {
    accuracy.top1 = 100.0 * static_cast<double>(correct1) / static_cast<double>(counted);
    accuracy.top5 = 100.0 * static_cast<double>(correct5) / static_cast<double>(counted);
  }
  return accuracy;
}

}  // namespace ssld::host
