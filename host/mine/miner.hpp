// The streaming loop of `ssld mine`: the protected images are hashed (and their teacher
// features kept) first; then the candidates stream through the parallel loader and the teacher
// batch by batch, each scored, checked against the protected set and offered to per-class
// bounded heaps. Memory is the heaps plus the protected set, whatever the number of candidates.
// Every `checkpoint_every` batches the heaps, the tally and the loader position are written
// atomically to state.json, so a killed run resumes where that state was written.
#pragma once

#include "data/data_config.hpp"
#include "mine/mine_config.hpp"
#include "mine/mine_report.hpp"

#include <ssld/model.hpp>

#include <filesystem>
#include <string>

namespace ssld::host {

struct MineJob {
  MineSettings settings;
  DataPipeline* candidates = nullptr;
  DataPipeline* protected_images = nullptr;  // nullptr: no deduplication
  Teacher* teacher = nullptr;
  c10::Device device{c10::kCPU};
  uint64_t seed = 0;
  std::string identity;  // the config and the teacher: a state written for another is refused
  MineFiles files;
  std::vector<std::string> class_names;
  bool resume = false;   // continue from files.state()
};

struct MineOutcome {
  int64_t candidates = 0;
  int64_t selected = 0;
  int64_t duplicates = 0;
  double seconds = 0;
};

// Throws ssld::Error for a state that belongs to another config, DataError for bad data.
MineOutcome mine(const MineJob& job);

}  // namespace ssld::host
