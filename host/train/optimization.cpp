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
    slots_.push_back(Slot{name, parameter, settings_.decay_bias_and_norm || parameter.dim() > 1, lr_scale, {}, {}});
  }
}

void Optimizer::zero_grad() {
  for (auto& slot : slots_)
    if (slot.parameter.grad().defined()) slot.parameter.mutable_grad().zero_();
}

double Optimizer::clip_gradients(double max_norm) {
  std::vector<at::Tensor> norms;
  for (auto& slot : slots_)
    if (slot.parameter.grad().defined()) norms.push_back(slot.parameter.grad().detach().norm(2).to(at::kFloat));
  if (norms.empty()) return 0.0;
  const double total = at::stack(norms).norm(2).item<double>();
  if (max_norm > 0 && std::isfinite(total) && total > max_norm) {
    const double scale = max_norm / (total + 1e-6);
    for (auto& slot : slots_)
      if (slot.parameter.grad().defined()) slot.parameter.mutable_grad().mul_(scale);
  }
  return total;
}

void Optimizer::step(double base_lr) {
  c10::NoGradGuard no_grad;
  ++steps_;
  const bool adamw = settings_.optimizer == OptimizerKind::AdamW;
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
      slot.parameter.mul_(1.0 - lr * decay);  // decoupled weight decay
      slot.first.mul_(settings_.betas[0]).add_(grad, 1.0 - settings_.betas[0]);
      slot.second.mul_(settings_.betas[1]).addcmul_(grad, grad, 1.0 - settings_.betas[1]);
      const double correction1 = 1.0 - std::pow(settings_.betas[0], static_cast<double>(steps_));
      const double correction2 = 1.0 - std::pow(settings_.betas[1], static_cast<double>(steps_));
      const at::Tensor denominator = (slot.second / correction2).sqrt_().add_(settings_.eps);
      slot.parameter.addcdiv_(slot.first, denominator, -lr / correction1);
    } else {
      if (decay > 0) grad = grad.add(slot.parameter, decay);
      if (settings_.momentum > 0) {
        if (!slot.first.defined()) slot.first = grad.clone();
        else slot.first.mul_(settings_.momentum).add_(grad);
        grad = settings_.nesterov ? grad.add(slot.first, settings_.momentum) : slot.first;
      }
      slot.parameter.add_(grad, -lr);
    }
  }
}

NamedTensors Optimizer::state() const {
  NamedTensors state{{"optimizer/steps", at::scalar_tensor(steps_, at::kLong)}};
  for (const auto& slot : slots_) {
    if (slot.first.defined()) state.emplace_back("optimizer/" + slot.name + "/first", slot.first);
    if (slot.second.defined()) state.emplace_back("optimizer/" + slot.name + "/second", slot.second);
  }
  return state;
}

void Optimizer::load_state(const std::map<std::string, at::Tensor>& tensors) {
  auto steps = tensors.find("optimizer/steps");
  if (steps == tensors.end()) throw Error("the checkpoint has no optimizer state");
  steps_ = steps->second.item<int64_t>();
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

void Ema::update(Student& student) {
  c10::NoGradGuard no_grad;
  const NamedTensors current = state_dict(student);
  for (size_t i = 0; i < shadow_.size(); ++i) {
    at::Tensor& shadow = shadow_[i].second;
    if (shadow.is_floating_point()) shadow.mul_(decay_).add_(current[i].second.detach(), 1.0 - decay_);
    else shadow.copy_(current[i].second);  // counters such as num_batches_tracked
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
