#include "train/train_settings.hpp"

#include "config/toml_options.hpp"

namespace ssld::host {

const EnumNames<OptimizerKind> kOptimizerNames = {{OptimizerKind::Sgd, "sgd"}, {OptimizerKind::AdamW, "adamw"}};
const EnumNames<LrSchedule> kScheduleNames = {{LrSchedule::Cosine, "cosine"},
                                              {LrSchedule::Step, "step"},
                                              {LrSchedule::Piecewise, "piecewise"},
                                              {LrSchedule::Constant, "constant"}};
const EnumNames<Precision> kPrecisionNames = {{Precision::Fp32, "fp32"}, {Precision::Bf16, "bf16"}, {Precision::Fp16, "fp16"}};

namespace {
using T = TrainSettings;
const SettingsTable<T>& train_table() {
  static const SettingsTable<T> table =
      SettingsTable<T>()
          .add("epochs", &T::epochs, "passes over data.train (its sampler defines an epoch)")
          .add("optimizer", &T::optimizer, kOptimizerNames, "sgd (momentum, nesterov) or adamw")
          .add("lr", &T::lr, "peak learning rate (after warmup)")
          .add("momentum", &T::momentum, "sgd momentum")
          .add("nesterov", &T::nesterov, "sgd Nesterov momentum")
          .add("betas", &T::betas, "adamw betas")
          .add("eps", &T::eps, "adamw epsilon")
          .add("weight_decay", &T::weight_decay, "decoupled for adamw, L2 added to the gradient for sgd")
          .add("decay_bias_and_norm", &T::decay_bias_and_norm, "also decay biases and norm parameters (1-d tensors)")
          .add("schedule", &T::schedule, kScheduleNames, "learning-rate schedule, updated every step")
          .add("warmup_epochs", &T::warmup_epochs, "linear warmup from 0 over this many epochs (fractions allowed)")
          .add("min_lr", &T::min_lr, "cosine: the final learning rate")
          .add("milestones", &T::milestones, "step/piecewise: epochs at which the learning rate changes")
          .add("gamma", &T::gamma, "step: factor applied at each milestone")
          .add("lr_values", &T::lr_values, "piecewise: the learning rate from each milestone on")
          .add("clip_grad_norm", &T::clip_grad_norm, "clip the gradients' global L2 norm to this (0: off)")
          .add("ema_decay", &T::ema_decay, "keep an exponential moving average of the weights (e.g. 0.999; 0: off)")
          .add("eval_every", &T::eval_every, "evaluate on data.val every this many epochs (and after the last)")
          .add("log_every", &T::log_every, "log a line (or refresh the progress bar) every this many steps")
          .add("checkpoint_every_steps", &T::checkpoint_every_steps,
               "also write the checkpoint every this many steps within an epoch (0: at epoch ends and on a stop "
               "signal only); a crash then loses at most this many steps")
          .add("max_nonfinite_steps", &T::max_nonfinite_steps,
               "stop after this many consecutive steps with non-finite loss or gradients")
          .add("precision", &T::precision, kPrecisionNames,
               "student arithmetic: autocast to bf16 (CUDA, or CPUs with bf16 instructions), or to fp16 with dynamic loss scaling (CUDA); fp32 elsewhere")
          .add("loss_scale", &T::loss_scale, "fp16: the initial loss scale")
          .add("loss_scale_growth_interval", &T::loss_scale_growth_interval,
               "fp16: double the scale after this many steps without overflow")
          .add("channels_last", &T::channels_last,
               "keep images and convolution weights in NHWC (faster convolutions on tensor cores)");
  return table;
}
}  // namespace

const Schema& train_table_schema() { return train_table().schema(); }

TrainSettings read_train_settings(const TomlValue& root, Diagnostics& diagnostics) {
  const TomlValue table = root.contains("train") ? root.at("train") : TomlValue(TomlTable{});
  TrainSettings settings;
  Diagnostics schema_problems;  // validate_host_tables reports them; here they only mean "use the defaults"
  validate_options(table, train_table_schema(), "[train]", {}, schema_problems);
  if (!schema_problems.empty()) return settings;
  const TomlOptions options(table, std::make_shared<const Schema>(train_table_schema()), "[train]");
  settings = train_table().read(options);

  auto problem = [&](const std::string& key, const std::string& message) {
    diagnostics.add(SourcePlace::of(table.contains(key) ? table.at(key) : table), "[train] " + key + ": " + message);
  };
  if (settings.betas.size() != 2) problem("betas", "give two values [beta1, beta2]");
  if (settings.epochs <= 0) problem("epochs", "must be positive");
  if (settings.lr <= 0) problem("lr", "must be positive");
  if (settings.momentum < 0 || settings.momentum >= 1) problem("momentum", "must lie in [0, 1)");
  if (settings.eps <= 0) problem("eps", "must be positive");
  if (settings.weight_decay < 0) problem("weight_decay", "must not be negative");
  if (settings.warmup_epochs < 0) problem("warmup_epochs", "must not be negative");
  if (settings.min_lr < 0) problem("min_lr", "must not be negative");
  if (settings.gamma <= 0) problem("gamma", "must be positive");
  if (settings.clip_grad_norm < 0) problem("clip_grad_norm", "must not be negative (0: off)");
  if (settings.max_nonfinite_steps <= 0) problem("max_nonfinite_steps", "must be positive");
  for (const double beta : settings.betas)
    if (beta < 0 || beta >= 1) problem("betas", "each beta must lie in [0, 1)");
  for (const int64_t milestone : settings.milestones)
    if (milestone <= 0 || milestone > settings.epochs) problem("milestones", "each milestone must lie in [1, epochs]");
  for (const double lr : settings.lr_values)
    if (lr < 0) problem("lr_values", "must not be negative");
  if (settings.ema_decay < 0 || settings.ema_decay >= 1) problem("ema_decay", "must lie in [0, 1)");
  if (settings.eval_every <= 0) problem("eval_every", "must be positive");
  if (settings.log_every <= 0) problem("log_every", "must be positive");
  if (settings.checkpoint_every_steps < 0) problem("checkpoint_every_steps", "must not be negative (0: off)");
  if (settings.loss_scale <= 0) problem("loss_scale", "must be positive");
  if (settings.loss_scale_growth_interval <= 0) problem("loss_scale_growth_interval", "must be positive");
  if (settings.schedule == LrSchedule::Piecewise && settings.lr_values.size() != settings.milestones.size())
    problem("lr_values", "piecewise needs one lr per milestone");
  if ((settings.schedule == LrSchedule::Step || settings.schedule == LrSchedule::Piecewise) && settings.milestones.empty())
    problem("milestones", std::string(kScheduleNames.name(settings.schedule)) + " needs milestones");
  return settings;
}

}  // namespace ssld::host
