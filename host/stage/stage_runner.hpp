// Runs one planned stage of `ssld train`: skips it when an earlier invocation finished it (its
// summary.json), refuses a leftover checkpoint without --resume, assembles its components,
// trains it into its folder and writes its config and summary. The results table of a run is
// made of the rows it returns.
#pragma once

#include "components/component_factory.hpp"
#include "data/data_config.hpp"
#include "stage/stage_plan.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

namespace ssld::host {

struct StageRow {
  std::string stage, student, teacher, losses;  // teacher: empty when trained on labels
  int64_t images = 0, labels = 0;               // training images, and the labels a loss read
  nlohmann::json result;                        // StageResult's fields (see summary.json)
};

struct StageRunOptions {
  bool resume = false;   // continue from a stage's checkpoint
  bool restart = false;  // delete a stage's folder first
  Sharding sharding;     // this process's share of the data under torchrun
  bool writes_files = true;  // rank 0, or a single process
  std::function<void()> barrier;  // under torchrun: ranks wait for what rank 0 wrote; empty otherwise
};

class StageRunner {
 public:
  StageRunner(ComponentFactory& factory, c10::Device device, uint64_t seed, StageRunOptions options);

  // `position` and `count` only name the stage in the log ("stage b (2 of 3)"). Throws
  // Interrupted when a stop signal ended the stage (after its checkpoint), Error for a refused
  // resume or a damaged summary.
  StageRow run(const PlannedStage& planned, size_t position, size_t count, Diagnostics& diagnostics);

 private:
  void wait_for_rank0() const {
    if (options_.barrier) options_.barrier();
  }
  ComponentFactory& factory_;
  c10::Device device_;
  uint64_t seed_;
  StageRunOptions options_;
};

// The run's results.md table: one row per stage.
std::string results_table(const std::vector<StageRow>& rows);

}  // namespace ssld::host
