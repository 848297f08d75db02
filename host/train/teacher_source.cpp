#include "train/teacher_source.hpp"

#include "teacher_cache/teacher_cache.hpp"

#include <c10/core/GradMode.h>

namespace ssld::host {

TeacherSource::TeacherSource(Teacher& teacher, TeacherCache* cache, c10::Device device, bool channels_last)
    : teacher_(teacher), cache_(cache), device_(device), channels_last_(channels_last) {
  teacher_.to(device_);
  if (channels_last_)  // convolution weights in NHWC, like the batches
    for (auto& [name, tensor] : teacher_.named_state())
      if (tensor.dim() == 4) tensor.set_data(tensor.contiguous(at::MemoryFormat::ChannelsLast));
}

at::Tensor TeacherSource::in_layout(const at::Tensor& images) const {
  return channels_last_ && images.dim() == 4 ? images.contiguous(at::MemoryFormat::ChannelsLast) : images;
}

ModelOutput TeacherSource::forward(const at::Tensor& images, const std::vector<std::string>& features) const {
  c10::NoGradGuard no_grad;
  return teacher_.forward(in_layout(images), features);
}

ModelOutput TeacherSource::outputs(const at::Tensor& images, const at::Tensor& ids, StepPosition position,
                                   const std::vector<std::string>& features) const {
  if (!cache_ || position.epoch < 0) return forward(images, features);
  ModelOutput output;
  output.logits = cache_->logits(position.epoch, position.step, ids, [&] { return forward(images).logits; });
  return output;
}

TeacherSource::ValidationAccuracy TeacherSource::accuracy(const DataPipeline& val, uint64_t seed,
                                                          DistContext* dist) const {
  if (cache_)
    if (const auto stored = cache_->teacher_accuracy()) return {*stored, true};
  const Accuracy accuracy =
      evaluate(val, device_, seed, [&](const at::Tensor& images) { return forward(images).logits; }, nullptr, dist);
  if (cache_) cache_->save_teacher_accuracy(accuracy);
  return {accuracy, false};
}

}  // namespace ssld::host
