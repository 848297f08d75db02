// The [train] table: optimizer, learning-rate schedule, regularization, evaluation and
// checkpoint cadence, and the failure policy for non-finite steps.
#pragma once

#include "config/diagnostics.hpp"
#include "config/settings_table.hpp"
#include "config/toml_value.hpp"

#include <ssld/options.hpp>

#include <string>
#include <vector>

namespace ssld::host {

enum class OptimizerKind { Sgd, AdamW };
enum class LrSchedule { Cosine, Step, Piecewise, Constant };
enum class Precision { Fp32, Bf16, Fp16 };  // of the student's arithmetic (CUDA autocast)
extern const EnumNames<OptimizerKind> kOptimizerNames;
extern const EnumNames<LrSchedule> kScheduleNames;
extern const EnumNames<Precision> kPrecisionNames;

// The defaults here are [train]'s defaults (train_settings.cpp's table documents each key).
struct TrainSettings {
  int64_t epochs = 1;
  OptimizerKind optimizer = OptimizerKind::Sgd;
  double lr = 0.1;
  double momentum = 0.9;
  bool nesterov = false;
  std::vector<double> betas = {0.9, 0.999};  // adamw: beta1, beta2
  double eps = 1e-8;                          // adamw
  double weight_decay = 0.0;
  bool decay_bias_and_norm = false;  // false: biases and norm parameters get no weight decay
  LrSchedule schedule = LrSchedule::Cosine;
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
  Precision precision = Precision::Fp32;  // CUDA autocast; fp32 on other devices
  double loss_scale = 65536.0;       // fp16: initial dynamic loss scale
  int64_t loss_scale_growth_interval = 2000;
  bool channels_last = false;
};

const Schema& train_table_schema();

// Reads a validated [train] table (defaults where absent); cross-field problems go to diagnostics.
TrainSettings read_train_settings(const TomlValue& root, Diagnostics& diagnostics);

}  // namespace ssld::host
