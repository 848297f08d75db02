#include "train/training_step.hpp"

#include "dist/data_parallel.hpp"
#include "train/mixed_precision.hpp"
#include "train/optimization.hpp"

#include <ssld/teacher_support.hpp>

#include <ATen/ATen.h>

#include <spdlog/spdlog.h>

#include <algorithm>

namespace ssld::host {

StepTiming::Clock::time_point StepTiming::now_after(const at::Tensor& produced) const {
  if (timed_ && cuda_) (void)produced.flatten()[0].item();  // a device-to-host copy waits for the queued work
  return Clock::now();
}

void StepTiming::add_teacher(Clock::time_point start, Clock::time_point end) {
  if (timed_) teacher_seconds_ += std::chrono::duration<double>(end - start).count();
}

void StepTiming::add_step(Clock::time_point start, Clock::time_point end) {
  if (timed_) step_seconds_ += std::chrono::duration<double>(end - start).count();
}

double StepTiming::teacher_share() const { return step_seconds_ > 0 ? teacher_seconds_ / step_seconds_ : -1; }

NamedTensors loss_parameters(WeightedLoss& term) {
  NamedTensors named;
  for (auto& [name, tensor] : term.loss->named_parameters()) named.emplace_back("loss/" + term.name + "/" + name, tensor);
  return named;
}

NamedTensors loss_buffers(WeightedLoss& term) {
  NamedTensors named;
  for (auto& [name, tensor] : term.loss->named_buffers()) named.emplace_back("loss/" + term.name + "/" + name, tensor);
  return named;
}

NamedTensors TrainingStep::trainable_parameters() {
  NamedTensors all = components_.student->named_parameters();
  for (auto& term : components_.losses)
    for (auto& entry : loss_parameters(term)) all.push_back(std::move(entry));
  return all;
}

TrainingStep::TrainingStep(StageComponents& components, c10::Device device)
    : components_(components), device_(device), timing_(device) {
  const TrainSettings& settings = components_.settings;
  Student& student = *components_.student;
  student.to(device_);
  if (settings.channels_last) {  // convolution weights in NHWC, like the batches the step feeds
    NamedTensors tensors = student.named_parameters();
    for (auto& buffer : student.named_buffers()) tensors.push_back(std::move(buffer));
    for (auto& [name, tensor] : tensors)
      if (tensor.dim() == 4) tensor.set_data(tensor.contiguous(at::MemoryFormat::ChannelsLast));
  }
  // The teacher runs in the step only when a loss reads it: a labels-only baseline beside a
  // teacher (a sweep's `ce` row) spent 70% of its steps on teacher forwards nobody read. Its
  // accuracy is still measured.
  teacher_read_ = std::any_of(components_.losses.begin(), components_.losses.end(),
                              [](const auto& term) { return term.loss->needs_teacher(); });
  if (components_.teacher)
    teacher_source_ = std::make_unique<TeacherSource>(*components_.teacher, components_.teacher_cache.get(), device_,
                                                      settings.channels_last);
  if (settings.precision != Precision::Fp32) {
    if (device_.is_cuda()) {
      autocast_ = true;
      autocast_dtype_ = settings.precision == Precision::Bf16 ? at::kBFloat16 : at::kHalf;
    } else if (device_.is_cpu() && settings.precision == Precision::Bf16 && cpu_has_bf16()) {
      autocast_ = true;  // CPU autocast: oneDNN's bf16 convolutions and matmuls
      autocast_dtype_ = at::kBFloat16;
      spdlog::info("student forward in bf16 (CPU autocast; this CPU has bf16 instructions)");
    } else {
      spdlog::warn("[train] precision = \"{}\" needs CUDA{}; training in fp32 on {}",
                   kPrecisionNames.name(settings.precision),
                   settings.precision == Precision::Bf16 ? " or a CPU with bf16 instructions (AVX512-BF16, AMX)" : "",
                   device_.str());
    }
  }
  scaler_ = std::make_unique<LossScaler>(autocast_ && autocast_dtype_ == at::kHalf, settings.loss_scale,
                                         settings.loss_scale_growth_interval);
  optimizer_ = std::make_unique<Optimizer>(student.named_parameters(), settings);
  for (auto& term : components_.losses) {  // a loss's own parameters (connectors) learn beside the student's
    term.loss->to(device_);
    term.loss->train(true);
    optimizer_->add_parameters(loss_parameters(term), term.lr_scale);
  }
  if (settings.ema_decay > 0) ema_ = std::make_unique<Ema>(student, settings.ema_decay);
  for (const auto& term : components_.losses) {
    for (auto& name : term.loss->student_features()) student_features_.push_back(name);
    for (auto& name : term.loss->teacher_features()) teacher_features_.push_back(name);
  }
}

TrainingStep::~TrainingStep() = default;

double StepOutcome::loss() const { return values[0].item<double>(); }
bool StepOutcome::was_applied() const { return applied.item<bool>(); }
bool StepOutcome::loss_was_finite() const { return loss_finite.item<bool>(); }

StepOutcome TrainingStep::run(const Batch& batch, double lr, StepPosition position, bool ends_log_window) {
  const TrainSettings& settings = components_.settings;
  Student& student = *components_.student;
  timing_.begin_step(ends_log_window);
  const auto step_start = timing_.now_after(batch.ids);
  const at::Tensor images =
      settings.channels_last ? batch.images.contiguous(at::MemoryFormat::ChannelsLast) : batch.images;
  ModelOutput teacher_output;
  const bool teacher_runs = teacher_source_ && teacher_read_;
  if (teacher_runs) {
    const auto start = timing_.now_after(batch.ids);
    teacher_output = teacher_source_->outputs(images, batch.ids, position, teacher_features_);
    timing_.add_teacher(start, timing_.now_after(teacher_output.logits));
  }
  at::Tensor total;
  std::vector<at::Tensor> logged;  // the total, then each term
  {
    const AutocastScope autocast(autocast_, autocast_dtype_, device_.is_cpu());
    const ModelOutput student_output = student.forward(images, student_features_);
    for (auto& term : components_.losses) {
      const LossOutput output = term.loss->compute(LossInputs{student_output,
                                                              teacher_runs ? &teacher_output : nullptr,
                                                              batch.labels, batch.label_mask, batch.mix_index,
                                                              batch.mix_lambda, &batch.ids});
      const at::Tensor value = output.value.to(at::kFloat);
      total = total.defined() ? total + value * term.weight : value * term.weight;
      logged.push_back(value.detach());
    }
  }
  logged.insert(logged.begin(), total.detach());
  StepOutcome outcome;
  outcome.values = at::stack(logged);
  outcome.loss_finite = at::isfinite(outcome.values[0]);
  optimizer_->zero_grad();
  // Backward runs on a non-finite loss too (its gradients are then discarded by the masked
  // update), so the host never branches on a device value. Under data parallelism every rank
  // must run it anyway, to issue the same collectives; the ranks' flags travel with the
  // gradients and all skip the step together.
  at::Tensor loss_finite = outcome.loss_finite;
  if (data_parallel_) {
    data_parallel_->before_backward(loss_finite);
    scaler_->scaled(total).backward();
    loss_finite = at::scalar_tensor(data_parallel_->after_backward(), loss_finite.options());
    outcome.loss_finite = loss_finite;
  } else {
    scaler_->scaled(total).backward();
  }
  if (scaler_->enabled()) scaler_->unscale(trainable_parameters());
  const at::Tensor gradient_norm = optimizer_->clip_gradients(settings.clip_grad_norm);
  outcome.applied = loss_finite.logical_and(at::isfinite(gradient_norm));
  if (scaler_->enabled()) {
    // fp16's dynamic loss scale: the one per-step read (GradScaler's update is host-side too).
    const bool loss_was_finite = outcome.loss_was_finite();
    if (loss_was_finite) scaler_->update(outcome.was_applied());
  }
  optimizer_->step(lr, outcome.applied);
  if (ema_) ema_->update(student, outcome.applied);
  timing_.add_step(step_start, timing_.now_after(batch.ids));
  return outcome;
}

}  // namespace ssld::host
