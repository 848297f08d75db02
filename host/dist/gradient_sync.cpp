#include "dist/gradient_sync.hpp"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <map>

namespace ssld::host {

GradientSync::GradientSync(DistContext& dist, const NamedTensors& parameters, double bucket_megabytes) : dist_(dist) {
  const auto bucket_bytes = static_cast<int64_t>(bucket_megabytes * 1024 * 1024);
  // Last registered first: backward produces the last layers' gradients first.
  std::map<std::pair<at::ScalarType, std::string>, size_t> open;  // (dtype, device) -> its filling bucket
  std::vector<std::vector<size_t>> members;
  for (auto it = parameters.rbegin(); it != parameters.rend(); ++it) {
    const at::Tensor& parameter = it->second;
    if (!parameter.requires_grad()) continue;
    const auto key = std::make_pair(parameter.scalar_type(), parameter.device().str());
    auto found = open.find(key);
    if (found == open.end() || buckets_[found->second].gradients * parameter.element_size() >= bucket_bytes) {
      buckets_.emplace_back();
      members.emplace_back();
      found = open.insert_or_assign(key, buckets_.size() - 1).first;
    }
    Bucket& bucket = buckets_[found->second];
    Slot slot;
    slot.parameter = parameter;
    slot.bucket = found->second;
    slot.offset = bucket.gradients;
    bucket.gradients += parameter.numel();
    members[found->second].push_back(slots_.size());
    slots_.push_back(std::move(slot));
  }
  for (size_t b = 0; b < buckets_.size(); ++b) {
    Bucket& bucket = buckets_[b];
    bucket.slots = members[b].size();
    for (size_t k = 0; k < members[b].size(); ++k) slots_[members[b][k]].flag_offset = bucket.gradients + static_cast<int64_t>(k);
    const at::Tensor& first = slots_[members[b][0]].parameter;
    bucket.flat = at::zeros({bucket.gradients + static_cast<int64_t>(bucket.slots) + 1},
                            first.options().requires_grad(false).device(dist_.device().is_cuda() ? first.device() : at::Device(at::kCPU)));
  }
  for (size_t i = 0; i < slots_.size(); ++i)
    slots_[i].hook = slots_[i].parameter.register_hook([this, i](const at::Tensor& gradient) { on_gradient(i, gradient); });
}

GradientSync::~GradientSync() {
  for (auto& slot : slots_) {
    try {
      slot.parameter.remove_hook(slot.hook);
    } catch (...) {  // the tensor may have been freed by a student that replaced it
    }
  }
}

void GradientSync::prepare(const at::Tensor& loss_finite) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& bucket : buckets_) {
    bucket.flat.zero_();
    bucket.ready = 0;
    bucket.pending.reset();
  }
  if (!buckets_.empty() && loss_finite.defined())
    buckets_[0].flat.narrow(0, buckets_[0].flat.numel() - 1, 1).copy_(loss_finite.logical_not().view({1}));
  for (auto& slot : slots_) slot.ready = false;
  next_launch_ = 0;
  launched_during_backward_ = 0;
  armed_ = true;
  in_backward_ = true;
}

void GradientSync::on_gradient(size_t index, const at::Tensor& gradient) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_) return;
  Slot& slot = slots_[index];
  Bucket& bucket = buckets_[slot.bucket];
  c10::NoGradGuard no_grad;
  bucket.flat.narrow(0, slot.offset, slot.parameter.numel()).view(slot.parameter.sizes()).copy_(gradient);
  if (slot.ready) return;  // a second call (retain_graph): the values are replaced, counted once
  slot.ready = true;
  bucket.flat.narrow(0, slot.flag_offset, 1).fill_(1);
  if (++bucket.ready == bucket.slots) launch_in_order(false);
}

void GradientSync::launch_in_order(bool all) {
  while (next_launch_ < buckets_.size() && (all || buckets_[next_launch_].ready == buckets_[next_launch_].slots)) {
    Bucket& bucket = buckets_[next_launch_++];
    bucket.pending = dist_.all_reduce_sum_async(bucket.flat);
    if (in_backward_) ++launched_during_backward_;
  }
}

bool GradientSync::finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_) return true;
  armed_ = false;
  in_backward_ = false;
  launch_in_order(true);  // buckets with gradients that did not come (unused parameters)
  for (auto& bucket : buckets_) {
    bucket.pending->wait();
    bucket.pending.reset();
  }
  c10::NoGradGuard no_grad;
  const double world = static_cast<double>(dist_.world_size());
  for (auto& bucket : buckets_) bucket.flat.narrow(0, 0, bucket.gradients).div_(world);
  // One copy of every "used" count to the host.
  std::vector<at::Tensor> flags;
  for (auto& bucket : buckets_) flags.push_back(bucket.flat.narrow(0, bucket.gradients, bucket.slots));
  if (!buckets_.empty()) flags.push_back(buckets_[0].flat.narrow(0, buckets_[0].flat.numel() - 1, 1));
  const at::Tensor used = at::cat(flags).to(at::kCPU, at::kFloat);  // the counts, then the non-finite losses
  const bool all_finite = buckets_.empty() || used.data_ptr<float>()[used.numel() - 1] <= 0;
  const float* counts = used.data_ptr<float>();
  std::vector<int64_t> first_flag(buckets_.size(), 0);
  for (size_t b = 1; b < buckets_.size(); ++b) first_flag[b] = first_flag[b - 1] + static_cast<int64_t>(buckets_[b - 1].slots);
  for (auto& slot : slots_) {
    const Bucket& bucket = buckets_[slot.bucket];
    if (counts[first_flag[slot.bucket] + (slot.flag_offset - bucket.gradients)] <= 0) continue;  // no rank used it
    const at::Tensor average = bucket.flat.narrow(0, slot.offset, slot.parameter.numel()).view(slot.parameter.sizes());
    if (slot.parameter.grad().defined()) {
      slot.parameter.mutable_grad().copy_(average);
    } else {
      slot.parameter.mutable_grad() = average.to(slot.parameter.device()).clone();
    }
  }
  return all_finite;
}

void GradientSync::average_existing_gradients() {
  prepare();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    in_backward_ = false;
  }
  for (size_t i = 0; i < slots_.size(); ++i)
    if (slots_[i].parameter.grad().defined()) on_gradient(i, slots_[i].parameter.grad());
  finish();
}

}  // namespace ssld::host
