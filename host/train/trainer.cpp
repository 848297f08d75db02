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
#include "train/metrics_log.hpp"
#include "train/mixed_precision.hpp"
#include "train/optimization.hpp"
#include "train/progress_display.hpp"
#include "train/teacher_guard.hpp"
#include "train/teacher_source.hpp"
#include "weights/safetensors.hpp"
#include "weights/state_dict.hpp"

#include <ssld/error.hpp>
#include <ssld/rng.hpp>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <unistd.h>

namespace ssld::host {

namespace {

double seconds_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

constexpr const char* kCheckpointFormat = "ssld-checkpoint-1";

// A checkpoint's metadata, read field by field: a missing or mistyped field is an error naming
// the file and the field (a damaged file, or one ssld did not write).
class CheckpointFields {
 public:
  CheckpointFields(const std::map<std::string, std::string>& metadata, std::string path)
      : metadata_(metadata), path_(std::move(path)) {}

  bool has(const std::string& key) const { return metadata_.count(key) > 0; }
  const std::string& text(const std::string& key) const {
    auto found = metadata_.find(key);
    if (found == metadata_.end()) fail(key, "is missing");
    return found->second;
  }
  int64_t integer(const std::string& key, int64_t minimum = 0) const {
    const std::string& value = text(key);
    int64_t out = 0;
    const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), out);
    if (error != std::errc() || end != value.data() + value.size() || out < minimum)
      fail(key, "is '" + value + "', not an integer >= " + std::to_string(minimum));
    return out;
  }
  double number(const std::string& key) const {
    const std::string& value = text(key);
    char* end = nullptr;
    const double out = std::strtod(value.c_str(), &end);
    if (value.empty() || end != value.c_str() + value.size() || !std::isfinite(out))
      fail(key, "is '" + value + "', not a finite number");
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw Error("'" + path_ + "' is not a usable ssld checkpoint: its field '" + key + "' " + what +
                ". Delete it and resume from an earlier copy, or start the stage over with --restart");
  }
  const std::map<std::string, std::string>& metadata_;
  std::string path_;
};

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

struct Trainer::Progress {
  int64_t global_step = 0;
  int64_t consecutive_nonfinite = 0;
  double best_top1 = -1;
  double seconds_before = 0;  // training time of earlier (interrupted) runs
  int64_t images = 0;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  double loss_sum = 0;  // since the last epoch row
  int64_t loss_steps = 0;
  double last_lr = 0;

  double seconds() const { return seconds_before + seconds_between(start, std::chrono::steady_clock::now()); }
};

StageComponents::StageComponents() = default;
StageComponents::~StageComponents() = default;
StageComponents::StageComponents(StageComponents&&) noexcept = default;
StageComponents& StageComponents::operator=(StageComponents&&) noexcept = default;

Trainer::Trainer(StageComponents& components, std::filesystem::path folder, c10::Device device, uint64_t seed,
                 std::string config_text)
    : components_(components), folder_(std::move(folder)), device_(device), seed_(seed),
      config_text_(std::move(config_text)), config_hash_(digest_hex(Rng::purpose_of(config_text_))) {
  const TrainSettings& settings = components_.settings;
  Student& student = *components_.student;
  student.to(device_);
  if (settings.channels_last) {  // convolution weights in NHWC, like the batches the step feeds
    NamedTensors tensors = student.named_parameters();
    for (auto& buffer : student.named_buffers()) tensors.push_back(std::move(buffer));
    for (auto& [name, tensor] : tensors)
      if (tensor.dim() == 4) tensor.set_data(tensor.contiguous(at::MemoryFormat::ChannelsLast));
  }
  if (components_.teacher)
    teacher_source_ = std::make_unique<TeacherSource>(*components_.teacher, components_.teacher_cache.get(), device_,
                                                      settings.channels_last);
  if (settings.precision != "fp32") {
    if (device_.is_cuda()) {
      autocast_ = true;
      autocast_dtype_ = settings.precision == "bf16" ? at::kBFloat16 : at::kHalf;
    } else {
      spdlog::warn("[train] precision = \"{}\" needs CUDA; training in fp32 on {}", settings.precision, device_.str());
    }
  }
  // After the student's tensors reached their device and layout: the gradient hooks hold them.
  if (DataParallelRun* run = current_data_parallel_run())
    data_parallel_ = std::make_unique<DataParallel>(*run->dist, run->settings, student);
  if (writes_files()) std::filesystem::create_directories(folder_ / "checkpoints");
  scaler_ = std::make_unique<LossScaler>(autocast_ && autocast_dtype_ == at::kHalf, settings.loss_scale,
                                         settings.loss_scale_growth_interval);
  if (components_.teacher) {
    teacher_guard_ = std::make_unique<TeacherGuard>(*components_.teacher);
    if (teacher_guard_->tensors() == 0) spdlog::warn("the teacher shows no tensors (named_state): it cannot be checked for changes");
  }
  optimizer_ = std::make_unique<Optimizer>(student.named_parameters(), settings);
  if (settings.ema_decay > 0) ema_ = std::make_unique<Ema>(student, settings.ema_decay);
  if (writes_files()) metrics_ = std::make_unique<MetricsLog>(folder_);
  for (const auto& term : components_.losses) {
    for (auto& name : term.loss->student_features()) student_features_.push_back(name);
    for (auto& name : term.loss->teacher_features()) teacher_features_.push_back(name);
  }
}

Trainer::~Trainer() = default;

bool Trainer::writes_files() const { return !data_parallel_ || data_parallel_->is_main(); }

void Trainer::sync_replicas() {
  if (data_parallel_) data_parallel_->sync_buffers(*components_.student, ema_ ? ema_->tensors() : NamedTensors{});
}

StageResult Trainer::run(bool resume) {
  const TrainSettings& settings = components_.settings;
  Progress progress;
  int64_t epoch = 0, step = 0;
  if (resume) load_checkpoint(epoch, step, progress);
  if (data_parallel_) {  // every rank starts from rank 0's weights, at the same position
    data_parallel_->check_same_position(epoch, step);
    data_parallel_->broadcast_student(*components_.student);
    if (ema_) {
      std::vector<at::Tensor> shadow;
      for (const auto& [name, tensor] : ema_->tensors()) shadow.push_back(tensor);
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
  if (ema_ && writes_files()) write_safetensors((folder_ / "student_ema.safetensors").string(), ema_->tensors(), {{"format", "ssld-weights-1"}});
  if (cache)
    spdlog::info("teacher cache: {} steps read, {} computed", cache->steps_read(), cache->steps_computed());
  if (components_.teacher && timed_step_seconds_ > 0) result_.teacher_share = teacher_seconds_ / timed_step_seconds_;
  result_.seconds = progress.seconds();
  result_.images_per_second = result_.seconds > 0 ? static_cast<double>(progress.images) / result_.seconds : 0;
  return result_;
}

// The teacher's accuracy on data.val, once per stage for the results table (stored with the
// teacher's soft labels when there is a teacher cache).
void Trainer::evaluate_teacher() {
  const auto [accuracy, from_cache] =
      teacher_source_->accuracy(*components_.val, seed_, data_parallel_ ? &data_parallel_->dist() : nullptr);
  result_.teacher_top1 = accuracy.top1;
  result_.teacher_top5 = accuracy.top5;
  spdlog::info("teacher: top-1 {:.2f}%, top-5 {:.2f}% on {} validation images{}", accuracy.top1, accuracy.top5,
               accuracy.samples, from_cache ? " (teacher cache)" : "");
}

StepOutcome Trainer::step(const Batch& batch, double lr, StepPosition position) {
  const TrainSettings& settings = components_.settings;
  Student& student = *components_.student;
  const at::Tensor images =
      settings.channels_last ? batch.images.contiguous(at::MemoryFormat::ChannelsLast) : batch.images;
  ModelOutput teacher_output;
  if (components_.teacher) {
    const bool sync = timing_step_ && device_.is_cuda();
    if (sync) (void)batch.ids[0].item<int64_t>();  // a device-to-host copy waits for the queued work
    const auto start = std::chrono::steady_clock::now();
    teacher_output = teacher_source_->outputs(images, batch.ids, position, teacher_features_);
    if (sync) (void)teacher_output.logits.view(-1)[0].item<float>();
    if (timing_step_) teacher_seconds_ += seconds_between(start, std::chrono::steady_clock::now());
  }
  at::Tensor total;
  std::vector<at::Tensor> logged;  // the total, then each term: copied to the host in one sync
  {
    const AutocastScope autocast(autocast_, autocast_dtype_);
    const ModelOutput student_output = student.forward(images, student_features_);
    for (auto& term : components_.losses) {
      const LossOutput output = term.loss->compute(LossInputs{student_output,
                                                              components_.teacher ? &teacher_output : nullptr,
                                                              batch.labels, batch.label_mask, batch.mix_index,
                                                              batch.mix_lambda});
      const at::Tensor value = output.value.to(at::kFloat);
      total = total.defined() ? total + value * term.weight : value * term.weight;
      logged.push_back(value.detach());
    }
  }
  logged.insert(logged.begin(), total.detach());
  const at::Tensor values = at::stack(logged).to(at::kCPU, at::kDouble);
  StepOutcome outcome;
  outcome.loss = values[0].item<double>();
  for (int64_t i = 1; i < values.size(0); ++i) outcome.terms.push_back(values[i].item<double>());
  optimizer_->zero_grad();
  outcome.loss_finite = std::isfinite(outcome.loss);
  if (data_parallel_) {
    // Every rank runs backward, even on a non-finite loss of its own, so that all ranks issue the
    // same collectives; the ranks' flags travel with the gradients and all skip the step together.
    data_parallel_->before_backward(outcome.loss_finite);
    scaler_->scaled(total).backward();
    outcome.loss_finite = data_parallel_->after_backward();
  } else if (outcome.loss_finite) {
    scaler_->scaled(total).backward();
  }
  if (outcome.loss_finite) {
    if (scaler_->enabled()) scaler_->unscale(student.named_parameters());
    outcome.gradients_finite = std::isfinite(optimizer_->clip_gradients(settings.clip_grad_norm));
    scaler_->update(outcome.gradients_finite);
  }
  if (outcome.applied()) {
    optimizer_->step(lr);
    if (ema_) ema_->update(student);
  }
  return outcome;
}

int64_t Trainer::train_steps(int64_t epoch, int64_t max_steps) {
  Progress progress;
  train_epoch(epoch, 0, progress, max_steps);
  return progress.images;
}

bool Trainer::train_epoch(int64_t epoch, int64_t first_step, Progress& progress, int64_t max_steps) {
  const TrainSettings& settings = components_.settings;
  DataPipeline& train = *components_.train;
  const int64_t steps = train.sampler->steps_per_epoch();
  ProgressDisplay display(isatty(STDERR_FILENO) && writes_files());
  const int64_t world = data_parallel_ ? data_parallel_->world_size() : 1;  // images count over all ranks
  Loader loader(*train.samples, *train.sampler, train.loader);
  loader.start(epoch, first_step);
  components_.student->train(true);
  const auto epoch_start = std::chrono::steady_clock::now();
  auto window_start = epoch_start;
  int64_t window_images = 0, epoch_images = 0, epoch_loss_steps = 0;
  std::vector<double> window_terms(components_.losses.size(), 0.0);
  double window_loss = 0, epoch_loss = 0;
  int64_t window_steps = 0;

  while (auto host_batch = loader.next()) {
    const int64_t n = host_batch->images.size(0);
    const double lr = learning_rate(settings, epoch * steps + host_batch->step, steps);
    progress.last_lr = lr;
    if (n > 0) {
      const Batch batch = to_device(*host_batch, train, device_, seed_);
      timing_step_ = !device_.is_cuda() || steps_started_++ % 16 == 0;
      if (timing_step_ && device_.is_cuda()) (void)batch.ids[0].item<int64_t>();
      const auto step_start = std::chrono::steady_clock::now();
      const StepOutcome outcome = step(batch, lr, StepPosition{epoch, host_batch->step});
      if (timing_step_) {
        if (device_.is_cuda()) (void)batch.ids[0].item<int64_t>();
        timed_step_seconds_ += seconds_between(step_start, std::chrono::steady_clock::now());
      }
      if (outcome.applied()) {
        progress.consecutive_nonfinite = 0;
        for (size_t i = 0; i < outcome.terms.size(); ++i) window_terms[i] += outcome.terms[i];
        window_loss += outcome.loss;
        ++window_steps;
        epoch_loss += outcome.loss;
        ++epoch_loss_steps;
        progress.loss_sum += outcome.loss;
        ++progress.loss_steps;
      } else if (outcome.loss_finite && scaler_->enabled() && scaler_->scale() >= 1.0) {
        ++result_.overflow_steps;  // expected now and then with fp16: the scaler backed off
        spdlog::debug("epoch {} step {}: fp16 gradients overflowed, loss scale now {}", epoch, host_batch->step,
                      scaler_->scale());
      } else {
        display.finish();
        ++result_.skipped_steps;
        if (++progress.consecutive_nonfinite > settings.max_nonfinite_steps)
          throw Error("training stopped: " + std::to_string(progress.consecutive_nonfinite) +
                      " consecutive steps had a non-finite loss or gradient (epoch " + std::to_string(epoch) +
                      ", step " + std::to_string(host_batch->step) + "). Lower [train] lr, set clip_grad_norm, "
                      "or check the data; the last good checkpoint is in " + (folder_ / "checkpoints").string());
        spdlog::warn("epoch {} step {}: non-finite {}, step skipped ({} in a row)", epoch, host_batch->step,
                     outcome.loss_finite ? "gradient" : "loss", progress.consecutive_nonfinite);
      }
    } else if (data_parallel_) {  // nothing readable in this rank's batch: keep the collectives in step, all skip
      data_parallel_->before_backward(false);
      (void)data_parallel_->after_backward();
    }
    ++progress.global_step;
    progress.images += n * world;
    window_images += n * world;
    epoch_images += n * world;

    const auto now = std::chrono::steady_clock::now();
    const bool log_due = (host_batch->step + 1) % settings.log_every == 0 || host_batch->step + 1 == steps;
    const double epoch_rate = static_cast<double>(epoch_images) / std::max(1e-9, seconds_between(epoch_start, now));
    const double remaining_steps = static_cast<double>((settings.epochs - epoch) * steps - host_batch->step - 1);
    display.update(ProgressLine{epoch, settings.epochs, host_batch->step + 1, steps,
                                epoch_loss_steps ? epoch_loss / epoch_loss_steps : NAN, lr, epoch_rate,
                                epoch_rate > 0 ? remaining_steps * static_cast<double>(train.batch_size) / epoch_rate : 0},
                   log_due);
    if (log_due) {
      const double rate = static_cast<double>(window_images) / std::max(1e-9, seconds_between(window_start, now));
      std::vector<std::pair<std::string, double>> row = {{"epoch", static_cast<double>(epoch)},
                                                         {"step", static_cast<double>(host_batch->step)},
                                                         {"global_step", static_cast<double>(progress.global_step)},
                                                         {"lr", lr},
                                                         {"loss", window_steps ? window_loss / window_steps : NAN},
                                                         {"images_per_second", rate}};
      for (size_t i = 0; i < window_terms.size(); ++i)
        row.emplace_back("loss/" + components_.losses[i].name, window_steps ? window_terms[i] / window_steps : NAN);
      if (scaler_->enabled()) row.emplace_back("loss_scale", scaler_->scale());
      if (metrics_) metrics_->step(row);
      window_start = now;
      window_images = 0;
      window_loss = 0;
      window_steps = 0;
      std::fill(window_terms.begin(), window_terms.end(), 0.0);
    }
    bool stop = stop_requested();
    // One small all-reduce: a signal to any rank stops all after this step; unequal shards fail.
    if (data_parallel_) stop = data_parallel_->agree_after_step(stop, host_batch->step + 1 == steps, epoch, host_batch->step);
    if (stop && host_batch->step + 1 == steps) {
      // The epoch's last step: end it as usual, so the checkpoint is an end-of-epoch one (which
      // resumes with any world size), then stop.
      display.finish();
      return true;
    }
    if (stop) {
      display.finish();
      loader.stop();
      sync_replicas();
      save_checkpoint(epoch, host_batch->step + 1, progress);
      throw Interrupted("stopped by a signal after epoch " + std::to_string(epoch) + " step " +
                        std::to_string(host_batch->step) + "; a checkpoint was written. Continue with --resume.");
    }
    if (max_steps > 0 && host_batch->step + 1 - first_step >= max_steps) {
      loader.stop();
      break;
    }
    // Mid-epoch checkpoints bound what a crash (kill -9, a lost node) costs; the epoch's end
    // writes its own. Every rank reaches this at the same step, so the buffer sync is collective.
    if (settings.checkpoint_every_steps > 0 && max_steps < 0 && host_batch->step + 1 < steps &&
        (host_batch->step + 1) % settings.checkpoint_every_steps == 0) {
      sync_replicas();
      save_checkpoint(epoch, host_batch->step + 1, progress);
    }
  }
  display.finish();
  return false;
}

void Trainer::evaluate_epoch(int64_t epoch, Progress& progress) {
  std::vector<std::pair<std::string, double>> row = {
      {"epoch", static_cast<double>(epoch)}, {"lr", progress.last_lr},
      {"train_loss", progress.loss_steps ? progress.loss_sum / progress.loss_steps : NAN}};
  progress.loss_sum = 0;
  progress.loss_steps = 0;
  if (components_.val) {
    Student& student = *components_.student;
    auto predict = [&](const at::Tensor& images) { return student.forward(images, {}).logits; };
    student.train(false);
    DistContext* dist = data_parallel_ ? &data_parallel_->dist() : nullptr;
    const Accuracy accuracy = evaluate(*components_.val, device_, seed_, predict, nullptr, dist);
    row.insert(row.end(), {{"top1", accuracy.top1}, {"top5", accuracy.top5}});
    result_.final_top1 = accuracy.top1;
    result_.final_top5 = accuracy.top5;
    if (accuracy.top1 > progress.best_top1) {
      progress.best_top1 = accuracy.top1;
      result_.best_top1 = accuracy.top1;
      result_.best_top5 = accuracy.top5;
      if (writes_files())
        write_safetensors((folder_ / "best.safetensors").string(), state_dict(student),
                          {{"format", "ssld-weights-1"}, {"epoch", std::to_string(epoch)}});
    }
    std::string ema_text;
    if (ema_) {
      ema_->swap_into(student);
      const Accuracy ema = evaluate(*components_.val, device_, seed_, predict, nullptr, dist);
      ema_->swap_into(student);
      row.insert(row.end(), {{"ema_top1", ema.top1}, {"ema_top5", ema.top5}});
      result_.ema_top1 = ema.top1;
      result_.ema_top5 = ema.top5;
      ema_text = fmt::format(", EMA top-1 {:.2f}%", ema.top1);
    }
    student.train(true);
    spdlog::info("epoch {}: top-1 {:.2f}%, top-5 {:.2f}%{} (best {:.2f}%)", epoch + 1, accuracy.top1, accuracy.top5,
                 ema_text, progress.best_top1);
  }
  row.emplace_back("seconds", progress.seconds());
  if (metrics_) metrics_->epoch(row);
}

void Trainer::save_checkpoint(int64_t epoch, int64_t next_step, const Progress& progress) {
  if (!writes_files()) return;  // rank 0 writes the run's one checkpoint (the ranks' states are equal)
  NamedTensors tensors;
  for (auto& [name, tensor] : state_dict(*components_.student)) tensors.emplace_back("student/" + name, tensor);
  if (ema_)
    for (const auto& [name, tensor] : ema_->tensors()) tensors.emplace_back("ema/" + name, tensor);
  for (auto& entry : optimizer_->state()) tensors.push_back(std::move(entry));
  tensors.emplace_back("rng/torch_cpu", at::detail::getDefaultCPUGenerator().get_state());
  std::map<std::string, std::string> metadata = {
      {"format", kCheckpointFormat},
      {"config", config_text_},
      {"sampler_state", components_.train->sampler->state()},
      {"epoch", std::to_string(epoch)},
      {"next_step", std::to_string(next_step)},
      {"global_step", std::to_string(progress.global_step)},
      {"best_top1", std::to_string(progress.best_top1)},
      {"consecutive_nonfinite", std::to_string(progress.consecutive_nonfinite)},
      {"skipped_steps", std::to_string(result_.skipped_steps)},
      {"images", std::to_string(progress.images)},
      {"seconds", std::to_string(progress.seconds())},
      {"config_hash", config_hash_},
      {"teacher", components_.teacher ? components_.teacher->identity() : ""},
      {"overflow_steps", std::to_string(result_.overflow_steps)},
      {"world_size", std::to_string(data_parallel_ ? data_parallel_->world_size() : 1)},
  };
  metadata.merge(scaler_->state());
  write_safetensors((folder_ / "checkpoints" / "last.safetensors").string(), tensors, metadata);
}

void Trainer::load_checkpoint(int64_t& epoch, int64_t& step, Progress& progress) {
  const std::string path = (folder_ / "checkpoints" / "last.safetensors").string();
  if (!std::filesystem::exists(path)) return;  // nothing to resume: start fresh
  const TensorFile file = read_safetensors(path);
  const auto& meta = file.metadata;
  const CheckpointFields field(meta, path);
  if (!field.has("format") || field.text("format") != kCheckpointFormat)
    throw Error("'" + path + "' is not an ssld checkpoint of this version (format '" +
                (field.has("format") ? field.text("format") : std::string("none")) + "', this ssld reads '" +
                kCheckpointFormat + "'); start the stage over with --restart");
  if (field.text("config_hash") != config_hash_) {
    const std::string changes = field.has("config") ? config_changes(field.text("config"), config_text_) : "";
    throw Error("refusing to resume from '" + path + "': the stage's config changed since it was written (" +
                field.text("config_hash") + " then, " + config_hash_ + " now)" +
                (changes.empty() ? std::string(". ") : ":" + changes + "\n") +
                "Undo the change, or start a new run (another [run] name, or --restart). Changes of [data] threads, "
                "prefetch or read_timeout_s, [train] log_every or checkpoint_every_steps and [dist] do not block a resume.");
  }
  const std::string teacher = components_.teacher ? components_.teacher->identity() : "";
  if (field.text("teacher") != teacher)
    throw Error("refusing to resume from '" + path + "': the teacher changed (" + field.text("teacher") + " then, " +
                teacher + " now); its predictions would differ from the ones the student learned so far");
  // The position counts steps of the global batch (batch_size x world size): an end-of-epoch
  // checkpoint resumes with any world size, a mid-epoch one only with the one that wrote it.
  const int64_t world = data_parallel_ ? data_parallel_->world_size() : 1;
  const int64_t saved_world = field.has("world_size") ? field.integer("world_size", 1) : 1;
  const int64_t saved_epoch = field.integer("epoch"), saved_step = field.integer("next_step");
  if (saved_step != 0 && saved_world != world)
    throw Error("refusing to resume from '" + path + "': it was written mid-epoch (epoch " +
                std::to_string(saved_epoch + 1) + ", step " + std::to_string(saved_step) + ") by a run of " +
                std::to_string(saved_world) + " process(es), and this run has " + std::to_string(world) +
                "; its position counts steps of that run's global batch. Resume with WORLD_SIZE=" +
                std::to_string(saved_world) + " (at least to the end of the epoch), or start over with --restart");
  if (saved_world != world)
    spdlog::warn("resuming a checkpoint of {} process(es) with {}: the global batch (and so the steps per epoch) "
                 "changes with the world size; the learning rate is not rescaled", saved_world, world);
  std::map<std::string, at::Tensor> tensors;
  NamedTensors student;
  for (const auto& [name, tensor] : file.tensors) {
    tensors[name] = tensor;
    if (name.rfind("student/", 0) == 0) student.emplace_back(name.substr(8), tensor);
  }
  load_state_dict(*components_.student, student, path);
  optimizer_->load_state(tensors);
  if (ema_) ema_->load(tensors);
  if (!tensors.count("rng/torch_cpu")) throw Error("'" + path + "' is not a usable ssld checkpoint: no 'rng/torch_cpu'");
  try {
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    generator.set_state(tensors.at("rng/torch_cpu"));
  } catch (const c10::Error& error) {
    throw Error("'" + path + "' is not a usable ssld checkpoint: 'rng/torch_cpu' is " + error.what_without_backtrace());
  }
  epoch = saved_epoch;
  step = saved_step;
  progress.global_step = field.integer("global_step");
  progress.best_top1 = field.number("best_top1");
  progress.consecutive_nonfinite = field.integer("consecutive_nonfinite");
  progress.images = field.integer("images");
  progress.seconds_before = field.number("seconds");
  result_.skipped_steps = field.integer("skipped_steps");
  if (field.has("overflow_steps")) result_.overflow_steps = field.integer("overflow_steps");
  if (field.has("sampler_state")) components_.train->sampler->load_state(field.text("sampler_state"));
  try {
    scaler_->load_state(meta);
  } catch (const Error& error) {
    throw Error("'" + path + "' is not a usable ssld checkpoint: " + error.what());
  }
  result_.best_top1 = std::max(0.0, progress.best_top1);
  spdlog::info("resuming from {} at epoch {} step {}", path, epoch + 1, step);
}

}  // namespace ssld::host
