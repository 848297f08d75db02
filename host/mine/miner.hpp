// The streaming loop of `ssld mine`: the protected images are hashed (and their teacher
// features kept) first; then the candidates stream through the parallel loader and the teacher
// batch by batch, each scored, checked against the protected set and offered to per-class
// bounded heaps. Memory is the heaps plus the protected set, whatever the number of candidates.
// Every `checkpoint_every` batches the heaps, the tally and the loader position are written
// atomically to state.json, so a killed run resumes where that state was written.
//
// Under torchrun each rank mines its shard of the candidates into a folder of its own
// (mine_shard); rank 0 then merges the ranks' heaps and counts (merge_mined_shards). The union
// of every shard's per-class top k holds the overall top k and ties break on the global stream
// position, so the merged list is the one a single process writes.
#pragma once

#include "data/data_config.hpp"
#include "mine/mine_config.hpp"
#include "mine/mine_report.hpp"
#include "train/teacher_source.hpp"

#include <ssld/model.hpp>

#include <filesystem>
#include <string>

namespace ssld::host {

struct MineJob {
  MineSettings settings;
  DataPipeline* candidates = nullptr;
  DataPipeline* protected_images = nullptr;  // nullptr: no deduplication
  const TeacherSource* teacher = nullptr;  // on `device`
  c10::Device device{c10::kCPU};
  uint64_t seed = 0;
  std::string identity;  // the config and the teacher: a state written for another is refused
  MineFiles files;       // where the state (and, in one process, the results) go
  std::vector<std::string> class_names;
  bool resume = false;   // continue from files.state()
  Sharding shard;        // which ranks' share of the candidates `candidates` yields
};

struct MineOutcome {
  int64_t candidates = 0;
  int64_t selected = 0;
  int64_t duplicates = 0;
  double seconds = 0;
};

// One process mines every candidate and writes the results into job.files.
// Throws ssld::Error for a state that belongs to another config, DataError for bad data.
MineOutcome mine(const MineJob& job);

// One rank mines its shard: the state in job.files (the rank's folder) ends marked done, with
// its heaps, counts and removed pairs; nothing else is written.
MineOutcome mine_shard(const MineJob& job);

// Rank 0, once every rank's mine_shard returned: reads the finished states of `shards` (one per
// rank, in rank order), merges them and writes the results into `into`, as mine() would.
// Throws ssld::Error for a shard state that is missing, unfinished or another run's.
MineOutcome merge_mined_shards(const MineJob& job, const std::vector<MineFiles>& shards, const MineFiles& into);

}  // namespace ssld::host
