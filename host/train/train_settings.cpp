#include "train/train_settings.hpp"

#include "config/toml_options.hpp"

namespace ssld::host {

const Schema& train_table_schema() {
  static const Schema schema =
      Schema()
          .add_int("epochs", 1, "passes over data.train (its sampler defines an epoch)")
          .add_string("optimizer", "sgd", "sgd (momentum, nesterov) or adamw", {"sgd", "adamw"})
          .add_float("lr", 0.1, "peak learning rate (after warmup)")
          .add_float("momentum", 0.9, "sgd momentum")
          .add_bool("nesterov", false, "sgd Nesterov momentum")
          .add_float_list("betas", {0.9, 0.999}, "adamw betas")
          .add_float("eps", 1e-8, "adamw epsilon")
          .add_float("weight_decay", 0.0, "decoupled for adamw, L2 added to the gradient for sgd")
          .add_bool("decay_bias_and_norm", false, "also decay biases and norm parameters (1-d tensors)")
          .add_string("schedule", "cosine", "learning-rate schedule, updated every step",
                      {"cosine", "step", "piecewise", "constant"})
          .add_float("warmup_epochs", 0.0, "linear warmup from 0 over this many epochs (fractions allowed)")
          .add_float("min_lr", 0.0, "cosine: the final learning rate")
          .add_int_list("milestones", {}, "step/piecewise: epochs at which the learning rate changes")
          .add_float("gamma", 0.1, "step: factor applied at each milestone")
          .add_float_list("lr_values", {}, "piecewise: the learning rate from each milestone on")
          .add_float("clip_grad_norm", 0.0, "clip the gradients' global L2 norm to this (0: off)")
          .add_float("ema_decay", 0.0, "keep an exponential moving average of the weights (e.g. 0.999; 0: off)")
          .add_int("eval_every", 1, "evaluate on data.val every this many epochs (and after the last)")
          .add_int("log_every", 50, "log a line (or refresh the progress bar) every this many steps")
          .add_int("checkpoint_every_steps", 0,
                   "also write the checkpoint every this many steps within an epoch (0: at epoch ends and on a stop "
                   "signal only); a crash then loses at most this many steps")
          .add_int("max_nonfinite_steps", 20, "stop after this many consecutive steps with non-finite loss or gradients")
          .add_string("precision", "fp32",
                      "student arithmetic on CUDA: autocast to bf16, or to fp16 with dynamic loss scaling (fp32 elsewhere)",
                      {"fp32", "bf16", "fp16"})
          .add_float("loss_scale", 65536.0, "fp16: the initial loss scale")
          .add_int("loss_scale_growth_interval", 2000, "fp16: double the scale after this many steps without overflow")
          .add_bool("channels_last", false, "keep images and convolution weights in NHWC (faster convolutions on tensor cores)");
  return schema;
}

TrainSettings read_train_settings(const TomlValue& root, Diagnostics& diagnostics) {
  const TomlValue table = root.contains("train") ? root.at("train") : TomlValue(TomlTable{});
  TrainSettings settings;
  Diagnostics schema_problems;  // validate_host_tables reports them; here they only mean "use the defaults"
  validate_options(table, train_table_schema(), "[train]", {}, schema_problems);
  if (!schema_problems.empty()) return settings;
  const TomlOptions options(table, std::make_shared<const Schema>(train_table_schema()), "[train]");
  settings.epochs = options.get_int("epochs");
  settings.optimizer = options.get_string("optimizer");
  settings.lr = options.get_float("lr");
  settings.momentum = options.get_float("momentum");
  settings.nesterov = options.get_bool("nesterov");
  const auto betas = options.get_float_list("betas");
  settings.eps = options.get_float("eps");
  settings.weight_decay = options.get_float("weight_decay");
  settings.decay_bias_and_norm = options.get_bool("decay_bias_and_norm");
  settings.schedule = options.get_string("schedule");
  settings.warmup_epochs = options.get_float("warmup_epochs");
  settings.min_lr = options.get_float("min_lr");
  settings.milestones = options.get_int_list("milestones");
  settings.gamma = options.get_float("gamma");
  settings.lr_values = options.get_float_list("lr_values");
  settings.clip_grad_norm = options.get_float("clip_grad_norm");
  settings.ema_decay = options.get_float("ema_decay");
  settings.eval_every = options.get_int("eval_every");
  settings.log_every = options.get_int("log_every");
  settings.checkpoint_every_steps = options.get_int("checkpoint_every_steps");
  settings.max_nonfinite_steps = options.get_int("max_nonfinite_steps");
  settings.precision = options.get_string("precision");
  settings.loss_scale = options.get_float("loss_scale");
  settings.loss_scale_growth_interval = options.get_int("loss_scale_growth_interval");
  settings.channels_last = options.get_bool("channels_last");

  auto problem = [&](const std::string& key, const std::string& message) {
    diagnostics.add(SourcePlace::of(table.contains(key) ? table.at(key) : table), "[train] " + key + ": " + message);
  };
  if (betas.size() != 2) problem("betas", "give two values [beta1, beta2]");
  else settings.beta1 = betas[0], settings.beta2 = betas[1];
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
  for (const double beta : betas)
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
  if (settings.schedule == "piecewise" && settings.lr_values.size() != settings.milestones.size())
    problem("lr_values", "piecewise needs one lr per milestone");
  if ((settings.schedule == "step" || settings.schedule == "piecewise") && settings.milestones.empty())
    problem("milestones", settings.schedule + " needs milestones");
  return settings;
}

}  // namespace ssld::host
