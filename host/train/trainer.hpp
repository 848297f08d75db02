// One training stage: the epochs of [train] over data.train, each step by TrainingStep
// (training_step.hpp), with evaluation and the best weights, the progress report
// (training_report.hpp), the checkpoint (checkpoint_store.hpp) and exact resume, stop signals,
// the non-finite policy and, under torchrun, the data-parallel agreements.
#pragma once

#include "core/stop_signals.hpp"
#include "train/stage_components.hpp"
#include "train/training_step.hpp"

#include <filesystem>
#include <map>
#include <memory>
#include <string>

namespace ssld::host {

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

class MetricsLog;
class TeacherGuard;
class DataParallel;
class CheckpointStore;
class TrainingReport;
class StepTally;

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

  // For benchmarks: the step alone, and the real loop of `epoch` (loader, device copy, step,
  // report) stopped after `max_steps` steps, without evaluation or checkpoint (returns the images).
  TrainingStep& step() { return *step_; }
  int64_t train_steps(int64_t epoch, int64_t max_steps);

 private:
  struct Progress;
  // Returns true when a stop signal arrived during the epoch's last step: the epoch ends as
  // usual and the caller stops after its checkpoint.
  bool train_epoch(int64_t epoch, int64_t first_step, Progress& progress, int64_t max_steps = -1);
  void save_checkpoint(int64_t epoch, int64_t next_step, const Progress& progress);
  void load_checkpoint(int64_t& epoch, int64_t& step, Progress& progress);
  void evaluate_epoch(int64_t epoch, Progress& progress);
  void settle_steps(int64_t epoch, int64_t step, Progress& progress);
  void evaluate_teacher();
  void load_loss_state(const std::map<std::string, at::Tensor>& tensors, const std::string& path);
  NamedTensors buffers();  // the student's and every loss's
  void sync_replicas();  // data-parallel: buffers (BatchNorm statistics, EMA) equal on all ranks
  bool writes_files() const;  // rank 0, or a single process

  StageComponents& components_;
  std::filesystem::path folder_;
  c10::Device device_;
  uint64_t seed_;
  std::string config_text_, config_hash_;
  std::unique_ptr<TrainingStep> step_;
  std::unique_ptr<DataParallel> data_parallel_;  // null in a single process
  std::unique_ptr<MetricsLog> metrics_;          // null on ranks > 0
  std::unique_ptr<TrainingReport> report_;
  std::unique_ptr<StepTally> tally_;
  std::unique_ptr<TeacherGuard> teacher_guard_;  // null without a teacher
  std::unique_ptr<CheckpointStore> checkpoints_;
  StageResult result_;
};

}  // namespace ssld::host
