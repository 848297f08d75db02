#include "train/mixed_precision.hpp"

#include <ssld/error.hpp>

#include <ATen/autocast_mode.h>

#include <charconv>
#include <cmath>
#include <cstdlib>

namespace ssld::host {

AutocastScope::AutocastScope(bool enabled, at::ScalarType dtype, bool cpu) : enabled_(enabled), cpu_(cpu) {
  if (!enabled_) return;
  was_enabled_ = cpu_ ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
  previous_dtype_ = cpu_ ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
  if (cpu_) {
    at::autocast::set_cpu_enabled(true);
    at::autocast::set_autocast_cpu_dtype(dtype);
  } else {
    at::autocast::set_enabled(true);
    at::autocast::set_autocast_gpu_dtype(dtype);
  }
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!enabled_) return;
  // The cast weights cached during the forward are freed when the outermost scope closes.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  if (cpu_) {
    at::autocast::set_cpu_enabled(was_enabled_);
    at::autocast::set_autocast_cpu_dtype(previous_dtype_);
  } else {
    at::autocast::set_enabled(was_enabled_);
    at::autocast::set_autocast_gpu_dtype(previous_dtype_);
  }
}

LossScaler::LossScaler(bool enabled, double initial_scale, int64_t growth_interval)
    : enabled_(enabled), scale_(enabled ? initial_scale : 1.0), growth_interval_(growth_interval) {}

at::Tensor LossScaler::scaled(const at::Tensor& loss) const { return enabled_ ? loss * scale_ : loss; }

void LossScaler::unscale(const NamedTensors& parameters) const {
  if (!enabled_) return;
  for (const auto& [name, parameter] : parameters) {
    at::Tensor grad = parameter.grad();
    if (grad.defined()) grad.mul_(1.0 / scale_);
  }
}

void LossScaler::update(bool finite) {
  if (!enabled_) return;
  if (!finite) {
    scale_ *= 0.5;
    good_steps_ = 0;
  } else if (++good_steps_ >= growth_interval_) {
    scale_ *= 2.0;
    good_steps_ = 0;
  }
}

std::map<std::string, std::string> LossScaler::state() const {
  char scale[32];
  std::snprintf(scale, sizeof(scale), "%.17g", scale_);  // exact round trip
  return {{"loss_scale", scale}, {"loss_scale_good_steps", std::to_string(good_steps_)}};
}

void LossScaler::load_state(const std::map<std::string, std::string>& metadata) {
  if (!enabled_) return;
  auto scale = metadata.find("loss_scale");
  auto good = metadata.find("loss_scale_good_steps");
  // Written by state() above; anything else is a damaged or foreign checkpoint.
  if (scale != metadata.end()) {
    char* end = nullptr;
    const double value = std::strtod(scale->second.c_str(), &end);
    if (scale->second.empty() || *end != '\0' || !std::isfinite(value) || value <= 0)
      throw Error("the checkpoint's loss_scale '" + scale->second + "' is not a positive number");
    scale_ = value;
  }
  if (good != metadata.end()) {
    int64_t value = 0;
    const auto [end, error] = std::from_chars(good->second.data(), good->second.data() + good->second.size(), value);
    if (error != std::errc() || end != good->second.data() + good->second.size() || value < 0)
      throw Error("the checkpoint's loss_scale_good_steps '" + good->second + "' is not a count");
    good_steps_ = value;
  }
}

}  // namespace ssld::host
