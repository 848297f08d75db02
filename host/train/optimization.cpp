#include "train/optimization.hpp"

#include "weights/state_dict.hpp"

#include <ssld/error.hpp>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>

namespace ssld::host {

Optimizer::Optimizer(NamedTensors parameters, const TrainSettings& settings) : settings_(settings) {
  add_parameters(std::move(parameters), 1.0);
}

void Optimizer::add_parameters(NamedTensors parameters, double lr_scale) {
  for (auto& [name, parameter] : parameters) {
    if (!parameter.requires_grad()) continue;
    if (!steps_.defined()) steps_ = at::zeros({}, at::TensorOptions().dtype(at::kLong).device(parameter.device()));
    slots_.push_back(Slot{name, parameter, settings_.decay_bias_and_norm || parameter.dim() > 1, lr_scale, {}, {}});
  }
}

void Optimizer::zero_grad() {
  for (auto& slot : slots_)
    if (slot.parameter.grad().defined()) slot.parameter.mutable_grad().zero_();
}

at::Tensor Optimizer::clip_gradients(double max_norm) {
  c10::NoGradGuard no_grad;
  std::vector<at::Tensor> norms;
  for (auto& slot : slots_)
    if (slot.parameter.grad().defined()) norms.push_back(slot.parameter.grad().detach().norm(2).to(at::kFloat));
  if (norms.empty())  // no gradient: finite; steps_ is undefined only without any trainable parameter
    return at::zeros({}, at::TensorOptions().dtype(at::kDouble).device(steps_.defined() ? steps_.device() : at::kCPU));
  const at::Tensor total = at::stack(norms).norm(2).to(at::kDouble);
  if (max_norm > 0) {
    // The factor is max_norm / (total + 1e-6) where the norm is finite and too large, else 1
    // (an exact no-op): the same bits as scaling only when needed, decided on the device.
    const at::Tensor clip = at::isfinite(total).logical_and_(total > max_norm);
    const at::Tensor factor = at::where(clip, at::full_like(total, max_norm).div_(total + 1e-6), 1.0);
    for (auto& slot : slots_)
      if (slot.parameter.grad().defined()) slot.parameter.mutable_grad().mul_(factor);
  }
  return total;
}

void Optimizer::step(double base_lr, const at::Tensor& applied) {
  c10::NoGradGuard no_grad;
  if (slots_.empty()) return;
  steps_.add_(applied);
  const bool adamw = settings_.optimizer == OptimizerKind::AdamW;
  // Each state update is computed as before and kept only where applied; the parameter moves by
  // where(applied, update, 0), and p + (-lr) * 0 is p.
  at::Tensor correction1, correction2;
  if (adamw) {
    const at::Tensor steps = steps_.to(at::kDouble);
    correction1 = 1.0 - at::pow(settings_.betas[0], steps);
    correction2 = 1.0 - at::pow(settings_.betas[1], steps);
  }
  for (auto& slot : slots_) {
    if (!slot.parameter.grad().defined()) continue;
    at::Tensor grad = slot.parameter.grad();
    const double decay = slot.decay ? settings_.weight_decay : 0.0;
    const double lr = slot.lr_scale == 1.0 ? base_lr : base_lr * slot.lr_scale;
    if (adamw) {
      if (!slot.first.defined()) {
        slot.first = at::zeros_like(slot.parameter);
        slot.second = at::zeros_like(slot.parameter);
      }
      if (decay > 0) slot.parameter.mul_(at::where(applied, 1.0 - lr * decay, 1.0));  // decoupled weight decay
      slot.first = at::where(applied, slot.first.mul(settings_.betas[0]).add_(grad, 1.0 - settings_.betas[0]), slot.first);
      slot.second = at::where(applied, slot.second.mul(settings_.betas[1]).addcmul_(grad, grad, 1.0 - settings_.betas[1]),
                              slot.second);
      // addcdiv_(first, denominator, -lr / correction1) with the step size a device scalar:
      // (step_size * first) / denominator, then added, as addcdiv rounds it.
      const at::Tensor denominator = slot.second.div(correction2).sqrt_().add_(settings_.eps);
      const at::Tensor step_size = at::where(applied, at::full_like(correction1, -lr).div_(correction1), 0.0);
      slot.parameter.add_(slot.first.mul(step_size).div_(denominator));
    } else {
      if (decay > 0) grad = grad.add(slot.parameter, decay);
      if (settings_.momentum > 0) {
        if (!slot.first.defined()) slot.first = at::where(applied, grad, 0.0);
        else slot.first = at::where(applied, slot.first.mul(settings_.momentum).add_(grad), slot.first);
        grad = settings_.nesterov ? grad.add(slot.first, settings_.momentum) : slot.first;
      }
      slot.parameter.add_(at::where(applied, grad, 0.0), -lr);
    }
  }
}

NamedTensors Optimizer::state() const {
  NamedTensors state{{"optimizer/steps", steps_.defined() ? steps_ : at::zeros({}, at::kLong)}};
  for (const auto& slot : slots_) {
    if (slot.first.defined()) state.emplace_back("optimizer/" + slot.name + "/first", slot.first);
    if (slot.second.defined()) state.emplace_back("optimizer/" + slot.name + "/second", slot.second);
  }
  return state;
}

void Optimizer::load_state(const std::map<std::string, at::Tensor>& tensors) {
  auto steps = tensors.find("optimizer/steps");
  if (steps == tensors.end()) throw Error("the checkpoint has no optimizer state");
  if (steps_.defined()) steps_.copy_(steps->second.reshape({}));
  for (auto& slot : slots_) {
    const auto device = slot.parameter.device();
    if (auto first = tensors.find("optimizer/" + slot.name + "/first"); first != tensors.end())
      slot.first = first->second.to(device);
    if (auto second = tensors.find("optimizer/" + slot.name + "/second"); second != tensors.end())
      slot.second = second->second.to(device);
  }
}

double learning_rate(const TrainSettings& settings, int64_t step, int64_t steps_per_epoch) {
  const double epoch = static_cast<double>(step) / static_cast<double>(steps_per_epoch);
  const double warmup = settings.warmup_epochs;
  if (warmup > 0 && epoch < warmup) return settings.lr * (static_cast<double>(step) + 1) / (warmup * steps_per_epoch);
  if (settings.schedule == LrSchedule::Constant) return settings.lr;
  if (settings.schedule == LrSchedule::Cosine) {
    const double total = static_cast<double>(settings.epochs) - warmup;
    const double progress = total > 0 ? std::min(1.0, (epoch - warmup) / total) : 1.0;
    return settings.min_lr + 0.5 * (settings.lr - settings.min_lr) * (1.0 + std::cos(M_PI * progress));
  }
  double lr = settings.lr;
  for (size_t i = 0; i < settings.milestones.size(); ++i) {
    if (epoch < static_cast<double>(settings.milestones[i])) break;
    lr = settings.schedule == LrSchedule::Step ? lr * settings.gamma : settings.lr_values[i];
  }
  return lr;
}

Ema::Ema(Student& student, double decay) : decay_(decay) {
  for (auto& [name, tensor] : state_dict(student)) shadow_.emplace_back(name, tensor.detach().clone());
}

void Ema::update(Student& student, const at::Tensor& applied) {
  c10::NoGradGuard no_grad;
  const NamedTensors current = state_dict(student);
  for (size_t i = 0; i < shadow_.size(); ++i) {
    at::Tensor& shadow = shadow_[i].second;
    const at::Tensor moved = shadow.is_floating_point() ? shadow.mul(decay_).add_(current[i].second.detach(), 1.0 - decay_)
                                                        : current[i].second.detach();  // counters: num_batches_tracked
    shadow.copy_(at::where(applied, moved, shadow));
  }
}

void Ema::load(const std::map<std::string, at::Tensor>& tensors) {
  c10::NoGradGuard no_grad;
  for (auto& [name, shadow] : shadow_) {
    auto found = tensors.find("ema/" + name);
    if (found == tensors.end()) throw Error("the checkpoint has no EMA weights for '" + name + "'");
    shadow.copy_(found->second);
  }
}

void Ema::swap_into(Student& student) {
  c10::NoGradGuard no_grad;
  const NamedTensors current = state_dict(student);
  for (size_t i = 0; i < shadow_.size(); ++i) {
    const at::Tensor saved = current[i].second.detach().clone();
    current[i].second.detach().copy_(shadow_[i].second);
    shadow_[i].second.copy_(saved);
  }
}

}  // namespace ssld::host
