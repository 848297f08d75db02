#include "train/trainer.hpp"

#include "data/data_error.hpp"
#include "data/device_batch.hpp"
#include "data/loader.hpp"
#include "eval/evaluation.hpp"
#include "train/metrics_log.hpp"
#include "train/optimization.hpp"
#include "weights/safetensors.hpp"
#include "weights/state_dict.hpp"

#include <ssld/error.hpp>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <unistd.h>

namespace ssld::host {

namespace {

std::atomic<int> stop_signals{0};

extern "C" void on_stop_signal(int signal_number) {
  if (stop_signals.fetch_add(1) >= 1) {  // the second signal: leave now
    std::signal(signal_number, SIG_DFL);
    std::raise(signal_number);
  }
}

double seconds_between(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

std::string format_duration(double seconds) {
  char text[32];
  const int s = static_cast<int>(seconds);
  std::snprintf(text, sizeof(text), "%d:%02d:%02d", s / 3600, (s / 60) % 60, s % 60);
  return text;
}

}  // namespace

void install_stop_signals() {
  stop_signals = 0;
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

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

Trainer::Trainer(StageComponents& components, std::filesystem::path folder, c10::Device device, uint64_t seed,
                 std::string config_hash)
    : components_(components), folder_(std::move(folder)), device_(device), seed_(seed),
      config_hash_(std::move(config_hash)) {
  std::filesystem::create_directories(folder_ / "checkpoints");
  components_.student->to(device_);
  if (components_.teacher) components_.teacher->to(device_);
  optimizer_ = std::make_unique<Optimizer>(components_.student->named_parameters(), components_.settings);
  if (components_.settings.ema_decay > 0) ema_ = std::make_unique<Ema>(*components_.student, components_.settings.ema_decay);
  metrics_ = std::make_unique<MetricsLog>(folder_);
}

Trainer::~Trainer() = default;

StageResult Trainer::run(bool resume) {
  const TrainSettings& settings = components_.settings;
  Progress progress;
  int64_t epoch = 0, step = 0;
  if (resume) load_checkpoint(epoch, step, progress);
  if (components_.teacher && components_.val) {  // the teacher's accuracy, once, for the table
    Teacher& teacher = *components_.teacher;
    const Accuracy accuracy = evaluate(*components_.val, device_, seed_,
                                       [&](const at::Tensor& images) { return teacher.forward(images, {}).logits; });
    result_.teacher_top1 = accuracy.top1;
    result_.teacher_top5 = accuracy.top5;
    spdlog::info("teacher: top-1 {:.2f}%, top-5 {:.2f}% on {} validation images", accuracy.top1, accuracy.top5,
                 accuracy.samples);
  }
  for (; epoch < settings.epochs; ++epoch, step = 0) {
    train_epoch(epoch, step, progress);
    if ((epoch + 1) % settings.eval_every == 0 || epoch + 1 == settings.epochs) evaluate_epoch(epoch, progress);
    save_checkpoint(epoch + 1, 0, progress);
  }
  write_safetensors((folder_ / "student.safetensors").string(), state_dict(*components_.student),
                    {{"format", "ssld-weights-1"}});
  if (ema_) write_safetensors((folder_ / "student_ema.safetensors").string(), ema_->tensors(), {{"format", "ssld-weights-1"}});
  result_.seconds = progress.seconds();
  result_.images_per_second = result_.seconds > 0 ? static_cast<double>(progress.images) / result_.seconds : 0;
  return result_;
}

void Trainer::train_epoch(int64_t epoch, int64_t first_step, Progress& progress) {
  const TrainSettings& settings = components_.settings;
  DataPipeline& train = *components_.train;
  Student& student = *components_.student;
  std::vector<std::string> student_features, teacher_features;
  for (const auto& term : components_.losses) {
    for (auto& name : term.loss->student_features()) student_features.push_back(name);
    for (auto& name : term.loss->teacher_features()) teacher_features.push_back(name);
  }
  const int64_t steps = train.sampler->steps_per_epoch();
  const bool terminal = isatty(STDERR_FILENO);
  Loader loader(*train.samples, *train.sampler, train.loader);
  loader.start(epoch, first_step);
  student.train(true);
  auto window_start = std::chrono::steady_clock::now();
  int64_t window_images = 0;
  std::vector<double> window_terms(components_.losses.size(), 0.0);
  double window_loss = 0;
  int64_t window_steps = 0;

  while (auto host_batch = loader.next()) {
    const int64_t n = host_batch->images.size(0);
    const double lr = learning_rate(settings, epoch * steps + host_batch->step, steps);
    progress.last_lr = lr;
    if (n > 0) {
      const Batch batch = to_device(*host_batch, train, device_, seed_);
      ModelOutput teacher_output;
      if (components_.teacher) {
        c10::NoGradGuard no_grad;
        teacher_output = components_.teacher->forward(batch.images, teacher_features);
      }
      const ModelOutput student_output = student.forward(batch.images, student_features);
      at::Tensor total;
      std::vector<double> terms;
      for (auto& term : components_.losses) {
        const LossOutput output = term.loss->compute(LossInputs{student_output,
                                                                components_.teacher ? &teacher_output : nullptr,
                                                                batch.labels, batch.label_mask, batch.mix_index,
                                                                batch.mix_lambda});
        total = total.defined() ? total + output.value * term.weight : output.value * term.weight;
        terms.push_back(output.value.item<double>());
      }
      const double loss = total.item<double>();
      optimizer_->zero_grad();
      bool finite = std::isfinite(loss);
      if (finite) {
        total.backward();
        finite = std::isfinite(optimizer_->clip_gradients(settings.clip_grad_norm));
      }
      if (!finite) {
        ++result_.skipped_steps;
        if (++progress.consecutive_nonfinite > settings.max_nonfinite_steps)
          throw Error("training stopped: " + std::to_string(progress.consecutive_nonfinite) +
                      " consecutive steps had a non-finite loss or gradient (epoch " + std::to_string(epoch) +
                      ", step " + std::to_string(host_batch->step) + "). Lower [train] lr, set clip_grad_norm, "
                      "or check the data; the last good checkpoint is in " + (folder_ / "checkpoints").string());
        spdlog::warn("epoch {} step {}: non-finite loss or gradient, step skipped ({} in a row)", epoch,
                     host_batch->step, progress.consecutive_nonfinite);
      } else {
        progress.consecutive_nonfinite = 0;
        optimizer_->step(lr);
        if (ema_) ema_->update(student);
        for (size_t i = 0; i < terms.size(); ++i) window_terms[i] += terms[i];
        window_loss += loss;
        ++window_steps;
        progress.loss_sum += loss;
        ++progress.loss_steps;
      }
    }
    ++progress.global_step;
    progress.images += n;
    window_images += n;

    const bool last = host_batch->step + 1 == steps;
    if ((host_batch->step + 1) % settings.log_every == 0 || last) {
      const auto now = std::chrono::steady_clock::now();
      const double rate = static_cast<double>(window_images) / std::max(1e-9, seconds_between(window_start, now));
      std::vector<std::pair<std::string, double>> row = {{"epoch", static_cast<double>(epoch)},
                                                         {"step", static_cast<double>(host_batch->step)},
                                                         {"global_step", static_cast<double>(progress.global_step)},
                                                         {"lr", lr},
                                                         {"loss", window_steps ? window_loss / window_steps : NAN},
                                                         {"images_per_second", rate}};
      for (size_t i = 0; i < window_terms.size(); ++i)
        row.emplace_back("loss/" + components_.losses[i].name, window_steps ? window_terms[i] / window_steps : NAN);
      metrics_->step(row);
      const double remaining_steps =
          static_cast<double>((settings.epochs - epoch) * steps - host_batch->step - 1);
      const double eta = rate > 0 ? remaining_steps * static_cast<double>(train.batch_size) / rate : 0;
      char line[256];
      std::snprintf(line, sizeof(line), "epoch %lld/%lld step %lld/%lld  loss %.4f  lr %.4g  %.0f img/s  eta %s",
                    static_cast<long long>(epoch + 1), static_cast<long long>(settings.epochs),
                    static_cast<long long>(host_batch->step + 1), static_cast<long long>(steps),
                    window_steps ? window_loss / window_steps : NAN, lr, rate, format_duration(eta).c_str());
      if (terminal) std::fprintf(stderr, "\r%-100s%s", line, last ? "\n" : "");
      else spdlog::info("{}", line);
      window_start = now;
      window_images = 0;
      window_loss = 0;
      window_steps = 0;
      std::fill(window_terms.begin(), window_terms.end(), 0.0);
    }
    if (stop_signals.load() > 0) {
      loader.stop();
      save_checkpoint(epoch, host_batch->step + 1, progress);
      throw Interrupted("stopped by a signal after epoch " + std::to_string(epoch) + " step " +
                        std::to_string(host_batch->step) + "; a checkpoint was written. Continue with --resume.");
    }
  }
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
    const Accuracy accuracy = evaluate(*components_.val, device_, seed_, predict);
    row.insert(row.end(), {{"top1", accuracy.top1}, {"top5", accuracy.top5}});
    result_.final_top1 = accuracy.top1;
    result_.final_top5 = accuracy.top5;
    if (accuracy.top1 > progress.best_top1) {
      progress.best_top1 = accuracy.top1;
      result_.best_top1 = accuracy.top1;
      result_.best_top5 = accuracy.top5;
      write_safetensors((folder_ / "best.safetensors").string(), state_dict(student),
                        {{"format", "ssld-weights-1"}, {"epoch", std::to_string(epoch)}});
    }
    std::string ema_text;
    if (ema_) {
      ema_->swap_into(student);
      const Accuracy ema = evaluate(*components_.val, device_, seed_, predict);
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
  metrics_->epoch(row);
}

void Trainer::save_checkpoint(int64_t epoch, int64_t next_step, const Progress& progress) {
  NamedTensors tensors;
  for (auto& [name, tensor] : state_dict(*components_.student)) tensors.emplace_back("student/" + name, tensor);
  if (ema_)
    for (const auto& [name, tensor] : ema_->tensors()) tensors.emplace_back("ema/" + name, tensor);
  for (auto& entry : optimizer_->state()) tensors.push_back(std::move(entry));
  tensors.emplace_back("rng/torch_cpu", at::detail::getDefaultCPUGenerator().get_state());
  const std::map<std::string, std::string> metadata = {
      {"format", "ssld-checkpoint-1"},
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
  };
  write_safetensors((folder_ / "checkpoints" / "last.safetensors").string(), tensors, metadata);
}

void Trainer::load_checkpoint(int64_t& epoch, int64_t& step, Progress& progress) {
  const std::string path = (folder_ / "checkpoints" / "last.safetensors").string();
  if (!std::filesystem::exists(path)) return;  // nothing to resume: start fresh
  const TensorFile file = read_safetensors(path);
  const auto& meta = file.metadata;
  auto field = [&](const char* key) {
    auto found = meta.find(key);
    if (found == meta.end()) throw Error("'" + path + "' is not an ssld checkpoint (no '" + key + "')");
    return found->second;
  };
  if (field("config_hash") != config_hash_)
    throw Error("refusing to resume from '" + path + "': the stage's config changed since it was written (" +
                field("config_hash") + " then, " + config_hash_ + " now; compare with config.toml in " +
                folder_.string() + "). Undo the change, or start a new run (another [run] name, or --restart).");
  const std::string teacher = components_.teacher ? components_.teacher->identity() : "";
  if (field("teacher") != teacher)
    throw Error("refusing to resume from '" + path + "': the teacher changed (" + field("teacher") + " then, " + teacher +
                " now); its predictions would differ from the ones the student learned so far");
  std::map<std::string, at::Tensor> tensors;
  NamedTensors student;
  for (const auto& [name, tensor] : file.tensors) {
    tensors[name] = tensor;
    if (name.rfind("student/", 0) == 0) student.emplace_back(name.substr(8), tensor);
  }
  load_state_dict(*components_.student, student, path);
  optimizer_->load_state(tensors);
  if (ema_) ema_->load(tensors);
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  generator.set_state(tensors.at("rng/torch_cpu"));
  epoch = std::stoll(field("epoch"));
  step = std::stoll(field("next_step"));
  progress.global_step = std::stoll(field("global_step"));
  progress.best_top1 = std::stod(field("best_top1"));
  progress.consecutive_nonfinite = std::stoll(field("consecutive_nonfinite"));
  progress.images = std::stoll(field("images"));
  progress.seconds_before = std::stod(field("seconds"));
  result_.skipped_steps = std::stoll(field("skipped_steps"));
  result_.best_top1 = std::max(0.0, progress.best_top1);
  spdlog::info("resuming from {} at epoch {} step {}", path, epoch + 1, step);
}

}  // namespace ssld::host
