// Mixed precision: an autocast scope for the student's forward and loss (CUDA: bf16 or fp16;
// CPU: bf16, on CPUs with bf16 instructions), and dynamic loss scaling for fp16 (bf16 has fp32's
// range and needs none).
#pragma once

#include <ssld/model.hpp>

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

namespace ssld::host {

// While alive, CUDA (or with `cpu`, CPU) ops run in `dtype` where autocast deems it safe
// (matmul, conv) and in fp32 where it does not (softmax, losses). `enabled = false` does nothing.
class AutocastScope {
 public:
  AutocastScope(bool enabled, at::ScalarType dtype, bool cpu = false);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_, cpu_;
  bool was_enabled_ = false;
  at::ScalarType previous_dtype_ = at::kHalf;
};

// fp16 gradients underflow unless the loss is scaled up before backward. The scale halves on
// a step whose gradients overflow (that step is skipped) and doubles after `growth_interval`
// good steps in a row, as torch.cuda.amp.GradScaler does.
class LossScaler {
 public:
  LossScaler(bool enabled, double initial_scale, int64_t growth_interval);

  bool enabled() const { return enabled_; }
  double scale() const { return scale_; }
  at::Tensor scaled(const at::Tensor& loss) const;
  // Divides the gradients by the scale, before clipping and the optimizer see them.
  void unscale(const NamedTensors& parameters) const;
  // Records whether the step's gradients were finite and adapts the scale.
  void update(bool finite);

  std::map<std::string, std::string> state() const;  // checkpoint metadata
  // Throws ssld::Error for a value state() would not have written.
  void load_state(const std::map<std::string, std::string>& metadata);

 private:
  bool enabled_;
  double scale_;
  int64_t growth_interval_;
  int64_t good_steps_ = 0;
};

}  // namespace ssld::host
