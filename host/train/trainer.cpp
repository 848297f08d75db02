#include "train/trainer.hpp"

#include "config/config_loader.hpp"
#include "config/toml_json.hpp"
#include "core/errors.hpp"
#include "core/json_differences.hpp"
#include "core/tensor_digest.hpp"
#include "data/device_batch.hpp"
#include "data/loader.hpp"
#include "dist/data_parallel.hpp"
#include "eval/evaluation.hpp"
#include "teacher_cache/teacher_cache.hpp"
#include "train/checkpoint_store.hpp"
#include "train/metrics_log.hpp"
#include "train/mixed_precision.hpp"
#include "train/optimization.hpp"
#include "train/step_tally.hpp"
#include "train/teacher_guard.hpp"
#include "train/training_report.hpp"
#include "weights/safetensors.hpp"
#include "weights/state_dict.hpp"

#include <ssld/error.hpp>
#include <ssld/rng.hpp>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <unistd.h>

namespace ssld::host {

namespace {

// "train.lr: 0.1 then, 0.2 now" for each key of the stage config that differs from the one a
// checkpoint was written with (its config is stored beside its hash).
std::string config_changes(const std::string& then_text, const std::string& now_text) {
  try {
    const nlohmann::json then = toml_to_json(parse_config_text(then_text, "the checkpoint's config"));
    const nlohmann::json now = toml_to_json(parse_config_text(now_text, "the current config"));
    std::string lines;
    for (auto line : json_differences(then, now)) {
      const auto there = line.find(" there, ");
      if (there != std::string::npos) line.replace(there, 8, " then, ");
      if (line.size() >= 5 && line.compare(line.size() - 5, 5, " here") == 0) line.replace(line.size() - 5, 5, " now");
      lines += "\n  " + line;
    }
    return lines;
  } catch (const std::exception&) {
    return "";  // an older checkpoint's config that no longer parses: the hashes still say it changed
  }
}

}  // namespace

// Where the stage stands: `done` is saved in every checkpoint (its seconds: those of earlier,
// interrupted runs until this one saves).
struct Trainer::Progress {
  TrainingProgress done;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  double last_lr = 0;

  double seconds() const {
    return done.seconds + std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
};

Trainer::Trainer(StageComponents& components, std::filesystem::path folder, c10::Device device, uint64_t seed,
                 std::string config_text)
    : components_(components), folder_(std::move(folder)), device_(device), seed_(seed),
      config_text_(std::move(config_text)), config_hash_(digest_hex(Rng::purpose_of(config_text_))) {
  step_ = std::make_unique<TrainingStep>(components_, device_);
  // After the student's tensors reached their device and layout: the gradient hooks hold them.
  if (DataParallelRun* run = current_data_parallel_run()) {
    data_parallel_ = std::make_unique<DataParallel>(*run->dist, run->settings, step_->trainable_parameters());
    step_->join(data_parallel_.get());
  }
  if (writes_files()) std::filesystem::create_directories(folder_ / "checkpoints");
  if (components_.teacher) {
    teacher_guard_ = std::make_unique<TeacherGuard>(*components_.teacher);
    if (teacher_guard_->tensors() == 0) spdlog::warn("the teacher shows no tensors (named_state): it cannot be checked for changes");
  }
  if (writes_files()) metrics_ = std::make_unique<MetricsLog>(folder_);
  std::vector<std::string> loss_names;
  for (const auto& term : components_.losses) loss_names.push_back(term.name);
  report_ = std::make_unique<TrainingReport>(components_.settings, std::move(loss_names), components_.train->batch_size,
                                             metrics_.get(), isatty(STDERR_FILENO) && writes_files());
  checkpoints_ = std::make_unique<CheckpointStore>(folder_);
  tally_ = std::make_unique<StepTally>(components_.losses.size(), device_);
}

Trainer::~Trainer() = default;

bool Trainer::writes_files() const { return !data_parallel_ || data_parallel_->is_main(); }

NamedTensors Trainer::buffers() {
  NamedTensors all = components_.student->named_buffers();
  for (auto& term : components_.losses)
    for (auto& entry : loss_buffers(term)) all.push_back(std::move(entry));
  return all;
}

void Trainer::sync_replicas() {
  Ema* ema = step_->ema();
  if (data_parallel_) data_parallel_->sync_buffers(buffers(), ema ? ema->tensors() : NamedTensors{});
}

StageResult Trainer::run(bool resume) {
  const TrainSettings& settings = components_.settings;
  Progress progress;
  int64_t epoch = 0, step = 0;
  if (resume) {
    load_checkpoint(epoch, step, progress);
    tally_->set_failed_run(progress.done.consecutive_nonfinite);
  }
  if (data_parallel_) {  // every rank starts from rank 0's weights, at the same position
    data_parallel_->check_same_position(epoch, step);
    NamedTensors state = step_->trainable_parameters();
    for (auto& entry : buffers()) state.push_back(std::move(entry));
    data_parallel_->broadcast_state(state);
    if (Ema* ema = step_->ema()) {
      std::vector<at::Tensor> shadow;
      for (const auto& [name, tensor] : ema->tensors()) shadow.push_back(tensor);
      data_parallel_->dist().broadcast(shadow, 0);
    }
  }
  TeacherCache* cache = components_.teacher_cache.get();
  if (cache) {
    cache->require_epochs(epoch, settings.epochs);
    const auto stored = cache->store().epochs();
    spdlog::info("teacher cache {} ({}): {} of {} epochs stored{}", cache->store().folder().string(), cache->codec().name(),
                 std::count_if(stored.begin(), stored.end(), [&](int64_t e) { return e < settings.epochs; }),
                 settings.epochs, stored.size() < static_cast<size_t>(settings.epochs) ? ", computing the others" : "");
  }
  if (components_.teacher && components_.val) evaluate_teacher();
  for (; epoch < settings.epochs; ++epoch, step = 0) {
    const bool stop_after_epoch = train_epoch(epoch, step, progress);
    if (teacher_guard_) teacher_guard_->verify("after epoch " + std::to_string(epoch + 1));
    sync_replicas();
    if ((epoch + 1) % settings.eval_every == 0 || epoch + 1 == settings.epochs) evaluate_epoch(epoch, progress);
    save_checkpoint(epoch + 1, 0, progress);
    if (stop_after_epoch)
      throw Interrupted("stopped by a signal at the end of epoch " + std::to_string(epoch + 1) +
                        "; a checkpoint was written. Continue with --resume.");
  }
  if (writes_files())
    write_safetensors((folder_ / "student.safetensors").string(), state_dict(*components_.student),
                      {{"format", "ssld-weights-1"}});
  if (step_->ema() && writes_files())
    write_safetensors((folder_ / "student_ema.safetensors").string(), step_->ema()->tensors(), {{"format", "ssld-weights-1"}});
  if (cache)
    spdlog::info("teacher cache: {} steps read, {} computed", cache->steps_read(), cache->steps_computed());
  if (components_.teacher) result_.teacher_share = step_->timing().teacher_share();
  result_.skipped_steps = progress.done.skipped_steps;
  result_.overflow_steps = progress.done.overflow_steps;
  result_.seconds = progress.seconds();
  result_.images_per_second = result_.seconds > 0 ? static_cast<double>(progress.done.images) / result_.seconds : 0;
  return result_;
}

// The teacher's accuracy on data.val, once per stage for the results table (stored with the
// teacher's soft labels when there is a teacher cache).
void Trainer::evaluate_teacher() {
  const auto [accuracy, from_cache] =
      step_->teacher()->accuracy(*components_.val, seed_, data_parallel_ ? &data_parallel_->dist() : nullptr);
  result_.teacher_top1 = accuracy.top1;
  result_.teacher_top5 = accuracy.top5;
  spdlog::info("teacher: top-1 {:.2f}%, top-5 {:.2f}% on {} validation images{}", accuracy.top1, accuracy.top5,
               accuracy.samples, from_cache ? " (teacher cache)" : "");
}

int64_t Trainer::train_steps(int64_t epoch, int64_t max_steps) {
  Progress progress;
  train_epoch(epoch, 0, progress, max_steps);
  return progress.done.images;
}

bool Trainer::train_epoch(int64_t epoch, int64_t first_step, Progress& progress, int64_t max_steps) {
  const TrainSettings& settings = components_.settings;
  DataPipeline& train = *components_.train;
  const int64_t steps = train.sampler->steps_per_epoch();
  const int64_t world = data_parallel_ ? data_parallel_->world_size() : 1;  // images count over all ranks
  LossScaler& scaler = step_->scaler();
  Loader loader(*train.samples, *train.sampler, train.loader);
  loader.start(epoch, first_step);
  components_.student->train(true);
  report_->start_epoch(steps);

  while (auto host_batch = loader.next()) {
    const int64_t n = host_batch->images.size(0);
    const double lr = learning_rate(settings, epoch * steps + host_batch->step, steps);
    progress.last_lr = lr;
    if (n > 0) {
      const Batch batch = to_device(*host_batch, train, device_, seed_);
      const StepOutcome outcome =
          step_->run(batch, lr, StepPosition{epoch, host_batch->step}, report_->log_due(host_batch->step));
      tally_->add(outcome, scaler.enabled() && scaler.scale() >= 1.0);
    } else if (data_parallel_) {  // nothing readable in this rank's batch: keep the collectives in step, all skip
      data_parallel_->before_backward(at::zeros({}, at::TensorOptions().dtype(at::kBool).device(device_)));
      (void)data_parallel_->after_backward();
    }
    ++progress.done.global_step;
    progress.done.images += n * world;

    const bool last_step = host_batch->step + 1 == steps;
    bool stop = stop_requested();
    // One small all-reduce: a signal to any rank stops all after this step; unequal shards fail.
    if (data_parallel_) stop = data_parallel_->agree_after_step(stop, last_step, epoch, host_batch->step);
    const bool enough_steps = max_steps > 0 && host_batch->step + 1 - first_step >= max_steps;
    // Mid-epoch checkpoints bound what a crash (kill -9, a lost node) costs; the epoch's end
    // writes its own. Every rank reaches this at the same step, so the buffer sync is collective.
    const bool checkpoint_due = settings.checkpoint_every_steps > 0 && max_steps < 0 && !last_step &&
                                (host_batch->step + 1) % settings.checkpoint_every_steps == 0;
    // The host reads what the steps did only here, so that no step waits for the device.
    if (report_->log_due(host_batch->step) || stop || enough_steps || checkpoint_due)
      settle_steps(epoch, host_batch->step, progress);
    report_->step(StepReport{epoch, host_batch->step, progress.done.global_step, lr, n * world,
                             scaler.enabled() ? std::optional<double>(scaler.scale()) : std::nullopt});

    if (stop && last_step) {
      // The epoch's last step: end it as usual, so the checkpoint is an end-of-epoch one (which
      // resumes with any world size), then stop.
      report_->finish_line();
      return true;
    }
    if (stop) {
      report_->finish_line();
      loader.stop();
      sync_replicas();
      save_checkpoint(epoch, host_batch->step + 1, progress);
      throw Interrupted("stopped by a signal after epoch " + std::to_string(epoch) + " step " +
                        std::to_string(host_batch->step) + "; a checkpoint was written. Continue with --resume.");
    }
    if (enough_steps) {
      loader.stop();
      break;
    }
    if (checkpoint_due) {
      sync_replicas();
      save_checkpoint(epoch, host_batch->step + 1, progress);
    }
  }
  report_->finish_line();
  return false;
}

// What the steps since the last read did, read from the device in one copy: the losses for the
// report, the skipped steps for the progress and the non-finite policy (whose weights the masked
// updates left alone).
void Trainer::settle_steps(int64_t epoch, int64_t step, Progress& progress) {
  const StepTally::Read read = tally_->read();
  report_->add_losses(read);
  progress.done.overflow_steps += read.overflow;
  progress.done.consecutive_nonfinite = read.failed_run;
  if (read.overflow > 0)
    spdlog::debug("epoch {} up to step {}: fp16 gradients overflowed in {} steps, loss scale now {}", epoch, step,
                  read.overflow, step_->scaler().scale());
  const int64_t skipped = read.loss_nonfinite + read.gradient_nonfinite;
  if (skipped == 0) return;
  progress.done.skipped_steps += skipped;
  report_->finish_line();
  const int64_t max_failed = components_.settings.max_nonfinite_steps;
  if (read.longest_failed_run > max_failed)
    throw Error("training stopped: " + std::to_string(read.longest_failed_run) +
                " consecutive steps had a non-finite loss or gradient (by epoch " + std::to_string(epoch) + ", step " +
                std::to_string(step) + "; at most " + std::to_string(max_failed) +
                " allowed by [train] max_nonfinite_steps). Lower [train] lr, set clip_grad_norm, or check the data; "
                "the last good checkpoint is in " + (folder_ / "checkpoints").string());
  spdlog::warn("epoch {}, the {} steps up to step {}: {} skipped (non-finite loss: {}, non-finite gradient: {}), "
               "{} in a row now",
               epoch, read.steps, step, skipped, read.loss_nonfinite, read.gradient_nonfinite, read.failed_run);
}

void Trainer::evaluate_epoch(int64_t epoch, Progress& progress) {
  std::vector<std::pair<std::string, double>> row = {
      {"epoch", static_cast<double>(epoch)}, {"lr", progress.last_lr}, {"train_loss", report_->take_train_loss()}};
  if (components_.val) {
    Student& student = *components_.student;
    auto predict = [&](const at::Tensor& images) { return student.forward(images, {}).logits; };
    student.train(false);
    DistContext* dist = data_parallel_ ? &data_parallel_->dist() : nullptr;
    const Accuracy accuracy = evaluate(*components_.val, device_, seed_, predict, nullptr, dist);
    row.insert(row.end(), {{"top1", accuracy.top1}, {"top5", accuracy.top5}});
    result_.final_top1 = accuracy.top1;
    result_.final_top5 = accuracy.top5;
    if (accuracy.top1 > progress.done.best_top1) {
      progress.done.best_top1 = accuracy.top1;
      result_.best_top1 = accuracy.top1;
      result_.best_top5 = accuracy.top5;
      if (writes_files())
        write_safetensors((folder_ / "best.safetensors").string(), state_dict(student),
                          {{"format", "ssld-weights-1"}, {"epoch", std::to_string(epoch)}});
    }
    std::string ema_text;
    if (Ema* ema_weights = step_->ema()) {
      ema_weights->swap_into(student);
      const Accuracy ema = evaluate(*components_.val, device_, seed_, predict, nullptr, dist);
      ema_weights->swap_into(student);
      row.insert(row.end(), {{"ema_top1", ema.top1}, {"ema_top5", ema.top5}});
      result_.ema_top1 = ema.top1;
      result_.ema_top5 = ema.top5;
      ema_text = fmt::format(", EMA top-1 {:.2f}%", ema.top1);
    }
    student.train(true);
    spdlog::info("epoch {}: top-1 {:.2f}%, top-5 {:.2f}%{} (best {:.2f}%)", epoch + 1, accuracy.top1, accuracy.top5,
                 ema_text, progress.done.best_top1);
  }
  row.emplace_back("seconds", progress.seconds());
  if (metrics_) metrics_->epoch(row);
}

void Trainer::save_checkpoint(int64_t epoch, int64_t next_step, const Progress& progress) {
  if (!writes_files()) return;  // rank 0 writes the run's one checkpoint (the ranks' states are equal)
  NamedTensors tensors;
  for (auto& [name, tensor] : state_dict(*components_.student)) tensors.emplace_back("student/" + name, tensor);
  if (Ema* ema = step_->ema())
    for (const auto& [name, tensor] : ema->tensors()) tensors.emplace_back("ema/" + name, tensor);
  for (auto& term : components_.losses) {  // "loss/<name>/...": a connector's weights, a memory
    for (auto& entry : loss_parameters(term)) tensors.push_back(std::move(entry));
    for (auto& entry : loss_buffers(term)) tensors.push_back(std::move(entry));
  }
  for (auto& entry : step_->optimizer().state()) tensors.push_back(std::move(entry));
  tensors.emplace_back("rng/torch_cpu", at::detail::getDefaultCPUGenerator().get_state());
  CheckpointState state;
  state.config_text = config_text_;
  state.config_hash = config_hash_;
  state.teacher = components_.teacher ? components_.teacher->identity() : "";
  state.sampler_state = components_.train->sampler->state();
  state.epoch = epoch;
  state.next_step = next_step;
  state.world_size = data_parallel_ ? data_parallel_->world_size() : 1;
  state.progress = progress.done;
  state.progress.seconds = progress.seconds();
  state.loss_scaler = step_->scaler().state();
  checkpoints_->write(state, tensors);
}

void Trainer::load_loss_state(const std::map<std::string, at::Tensor>& tensors, const std::string& path) {
  const c10::NoGradGuard no_grad;
  for (auto& term : components_.losses) {
    NamedTensors state = loss_parameters(term);
    for (auto& entry : loss_buffers(term)) state.push_back(std::move(entry));
    for (auto& [name, tensor] : state) {
      auto found = tensors.find(name);
      if (found == tensors.end())
        throw Error("'" + path + "' is not a usable ssld checkpoint for this stage: it has no '" + name +
                    "' (the state of loss '" + term.name + "'); start the stage over with --restart");
      if (found->second.sizes() != tensor.sizes() || found->second.scalar_type() != tensor.scalar_type())
        throw Error("'" + path + "' is not a usable ssld checkpoint for this stage: '" + name + "' has another shape or "
                    "dtype than loss '" + term.name + "' has now; start the stage over with --restart");
      tensor.copy_(found->second);
    }
  }
}

void Trainer::load_checkpoint(int64_t& epoch, int64_t& step, Progress& progress) {
  if (!checkpoints_->exists()) return;  // nothing to resume: start fresh
  const std::string& path = checkpoints_->path();
  const Checkpoint checkpoint = checkpoints_->read();
  const CheckpointState& saved = checkpoint.state;
  if (saved.config_hash != config_hash_) {
    const std::string changes = saved.config_text.empty() ? "" : config_changes(saved.config_text, config_text_);
    throw Error("refusing to resume from '" + path + "': the stage's config changed since it was written (" +
                saved.config_hash + " then, " + config_hash_ + " now)" +
                (changes.empty() ? std::string(". ") : ":" + changes + "\n") +
                "Undo the change, or start a new run (another [run] name, or --restart). Changes of [data] threads, "
                "prefetch or read_timeout_s, [train] log_every or checkpoint_every_steps and [dist] do not block a resume.");
  }
  const std::string teacher = components_.teacher ? components_.teacher->identity() : "";
  if (saved.teacher != teacher)
    throw Error("refusing to resume from '" + path + "': the teacher changed (" + saved.teacher + " then, " +
                teacher + " now); its predictions would differ from the ones the student learned so far");
  // The position counts steps of the global batch (batch_size x world size): an end-of-epoch
  // checkpoint resumes with any world size, a mid-epoch one only with the one that wrote it.
  const int64_t world = data_parallel_ ? data_parallel_->world_size() : 1;
  if (saved.next_step != 0 && saved.world_size != world)
    throw Error("refusing to resume from '" + path + "': it was written mid-epoch (epoch " +
                std::to_string(saved.epoch + 1) + ", step " + std::to_string(saved.next_step) + ") by a run of " +
                std::to_string(saved.world_size) + " process(es), and this run has " + std::to_string(world) +
                "; its position counts steps of that run's global batch. Resume with WORLD_SIZE=" +
                std::to_string(saved.world_size) + " (at least to the end of the epoch), or start over with --restart");
  if (saved.world_size != world)
    spdlog::warn("resuming a checkpoint of {} process(es) with {}: the global batch (and so the steps per epoch) "
                 "changes with the world size; the learning rate is not rescaled", saved.world_size, world);
  std::map<std::string, at::Tensor> tensors;
  NamedTensors student;
  for (const auto& [name, tensor] : checkpoint.tensors) {
    tensors[name] = tensor;
    if (name.rfind("student/", 0) == 0) student.emplace_back(name.substr(8), tensor);
  }
  load_state_dict(*components_.student, student, path);
  load_loss_state(tensors, path);
  step_->optimizer().load_state(tensors);
  if (Ema* ema = step_->ema()) ema->load(tensors);
  if (!tensors.count("rng/torch_cpu")) throw Error("'" + path + "' is not a usable ssld checkpoint: no 'rng/torch_cpu'");
  try {
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    generator.set_state(tensors.at("rng/torch_cpu"));
  } catch (const c10::Error& error) {
    throw Error("'" + path + "' is not a usable ssld checkpoint: 'rng/torch_cpu' is " + error.what_without_backtrace());
  }
  epoch = saved.epoch;
  step = saved.next_step;
  progress.done = saved.progress;
  if (saved.sampler_state) components_.train->sampler->load_state(*saved.sampler_state);
  try {
    step_->scaler().load_state(saved.loss_scaler);
  } catch (const Error& error) {
    throw Error("'" + path + "' is not a usable ssld checkpoint: " + error.what());
  }
  result_.best_top1 = std::max(0.0, progress.done.best_top1);
  spdlog::info("resuming from {} at epoch {} step {}", path, epoch + 1, step);
}

}  // namespace ssld::host
