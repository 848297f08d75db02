// The [train] table: optimizer, learning-rate schedule, regularization, evaluation and
// checkpoint cadence, and the failure policy for non-finite steps.
#pragma once

#include "config/diagnostics.hpp"
#include "config/toml_value.hpp"

#include <ssld/options.hpp>

#include <string>
#include <vector>

namespace ssld::host {

struct TrainSettings {
  int64_t epochs = 1;
  std::string optimizer = "sgd";  // sgd | adamw
  double lr = 0.1;
  double momentum = 0.9;
  bool nesterov = false;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adamw
  double weight_decay = 0.0;
  bool decay_bias_and_norm = false;  // false: biases and norm parameters get no weight decay
  std::string schedule = "cosine";   // cosine | step | piecewise | constant
  double warmup_epochs = 0.0;
  double min_lr = 0.0;
  std::vector<int64_t> milestones;   // step / piecewise: epochs where the lr changes
  double gamma = 0.1;                // step: factor at each milestone
  std::vector<double> lr_values;     // piecewise: lr from each milestone on
  double clip_grad_norm = 0.0;       // 0: off
  double ema_decay = 0.0;            // 0: no EMA
  int64_t eval_every = 1;            // epochs
  int64_t log_every = 50;            // steps
  int64_t checkpoint_every_steps = 0;  // 0: epoch ends and stop signals only
  int64_t max_nonfinite_steps = 20;  // consecutive skipped steps before the run stops
  std::string precision = "fp32";    // fp32 | bf16 | fp16 (CUDA autocast; fp32 on other devices)
  double loss_scale = 65536.0;       // fp16: initial dynamic loss scale
  int64_t loss_scale_growth_interval = 2000;
  bool channels_last = false;
};

const Schema& train_table_schema();

// Reads a validated [train] table (defaults where absent); cross-field problems go to diagnostics.
TrainSettings read_train_settings(const TomlValue& root, Diagnostics& diagnostics);

}  // namespace ssld::host
