// One training stage: the SSLD step (teacher and student on the same batch, weighted losses,
// backward, clipping, optimizer, schedule, EMA) over the epochs of [train], with evaluation,
// metrics files, atomic checkpoints, exact resume, signal handling and the non-finite policy.
#pragma once

#include "core/stop_signals.hpp"
#include "data/data_config.hpp"
#include "train/teacher_source.hpp"
#include "train/train_settings.hpp"

#include <ssld/augmentation.hpp>
#include <ssld/loss.hpp>
#include <ssld/model.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace ssld::host {

struct WeightedLoss {
  std::unique_ptr<Loss> loss;
  std::string name;  // "ssld", or "kl#1" when a type repeats
  double weight = 1.0;
};

class TeacherCache;

struct StageComponents {
  StageComponents();
  ~StageComponents();
  StageComponents(StageComponents&&) noexcept;
  StageComponents& operator=(StageComponents&&) noexcept;

  std::unique_ptr<Student> student;
  std::unique_ptr<Teacher> teacher;             // may be null
  std::unique_ptr<TeacherCache> teacher_cache;  // [teacher_cache]; null without one
  std::vector<WeightedLoss> losses;
  std::unique_ptr<DataPipeline> train;
  std::unique_ptr<DataPipeline> val;  // may be null
  TrainSettings settings;
};

struct StageResult {
  double best_top1 = 0, best_top5 = 0;  // the student's best validation accuracy
  double final_top1 = 0, final_top5 = 0;
  double ema_top1 = -1, ema_top5 = -1;  // -1: no EMA
  double teacher_top1 = -1, teacher_top5 = -1;
  double seconds = 0;
  double images_per_second = 0;
  double teacher_share = -1;  // fraction of step time spent on the teacher's soft labels; -1: no teacher
  int64_t skipped_steps = 0;   // non-finite loss or gradients
  int64_t overflow_steps = 0;  // fp16 gradients overflowed at the current loss scale
};

// What one training step did.
struct StepOutcome {
  bool loss_finite = true;
  bool gradients_finite = true;
  double loss = 0;            // the weighted total
  std::vector<double> terms;  // each [[loss]] term, unweighted
  bool applied() const { return loss_finite && gradients_finite; }
};

class Optimizer;
class Ema;
class MetricsLog;
class LossScaler;
class TeacherGuard;
class DataParallel;

class Trainer {
 public:
  // `folder` receives metrics, checkpoints and weights; `config_text` (the stage's config less
  // what cannot change the result), its hash and the teacher's identity are stored in
  // checkpoints and checked on resume, which names the keys that changed. Under a data-parallel run
  // (current_data_parallel_run(), set by `ssld train` from the torchrun variables) this process
  // is one rank: gradients are averaged over ranks, decisions agreed, and only rank 0 writes.
  Trainer(StageComponents& components, std::filesystem::path folder, c10::Device device, uint64_t seed,
          std::string config_text);
  ~Trainer();

  // Trains (resuming from folder/checkpoints/last.safetensors when `resume`); throws
  // Interrupted after writing a checkpoint when a stop signal arrived.
  StageResult run(bool resume);

  // One SSLD step on a batch already on the device: teacher forward (no grad; or its soft
  // labels from the teacher cache, when there is one and `position` is known), student forward
  // and losses (autocast on CUDA when [train] precision asks), backward (loss-scaled for fp16),
  // clipping, optimizer and EMA. A step with non-finite loss or gradients changes no weight.
  StepOutcome step(const Batch& batch, double lr, StepPosition position = {});

  // For benchmarks: the real training loop of `epoch` (loader, device copy, step, logging),
  // stopped after `max_steps` steps, without evaluation or checkpoint. Returns the images.
  int64_t train_steps(int64_t epoch, int64_t max_steps);

 private:
  struct Progress;
  // Returns true when a stop signal arrived during the epoch's last step: the epoch ends as
  // usual and the caller stops after its checkpoint.
  bool train_epoch(int64_t epoch, int64_t first_step, Progress& progress, int64_t max_steps = -1);
  void save_checkpoint(int64_t epoch, int64_t next_step, const Progress& progress);
  void load_checkpoint(int64_t& epoch, int64_t& step, Progress& progress);
  void evaluate_epoch(int64_t epoch, Progress& progress);
  void evaluate_teacher();
  void sync_replicas();  // data-parallel: buffers (BatchNorm statistics, EMA) equal on all ranks
  bool writes_files() const;  // rank 0, or a single process

  StageComponents& components_;
  std::filesystem::path folder_;
  c10::Device device_;
  uint64_t seed_;
  std::string config_text_, config_hash_;
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<Ema> ema_;
  std::unique_ptr<MetricsLog> metrics_;
  std::unique_ptr<LossScaler> scaler_;
  std::unique_ptr<TeacherSource> teacher_source_;  // null without a teacher
  std::unique_ptr<TeacherGuard> teacher_guard_;    // null without a teacher
  std::unique_ptr<DataParallel> data_parallel_;  // null in a single process
  bool autocast_ = false;
  at::ScalarType autocast_dtype_ = at::kFloat;
  std::vector<std::string> student_features_, teacher_features_;  // what the losses read
  StageResult result_;
  // The teacher's share of step time, from timed steps: every step on the CPU; on CUDA every
  // 16th, with the device synchronized around it (timing every step would stall the queue).
  int64_t steps_started_ = 0;
  bool timing_step_ = false;
  double teacher_seconds_ = 0, timed_step_seconds_ = 0;
};

}  // namespace ssld::host
