#include "mine/miner.hpp"

#include "core/atomic_file.hpp"
#include "core/bounded_input.hpp"
#include "core/errors.hpp"
#include "core/stop_signals.hpp"
#include "data/device_batch.hpp"
#include "data/loader.hpp"
#include "mine/dedup.hpp"

#include <ssld/error.hpp>
#include <ssld/rng.hpp>

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <fstream>

namespace ssld::host {

namespace fs = std::filesystem;

namespace {

constexpr uint64_t kRandomScorePurpose = Rng::purpose_of("mine.score.random");

std::vector<std::string> requested_features(const MineSettings& settings) {
  if (!settings.dedup.feature) return {};
  return {settings.dedup.feature_name};
}

const at::Tensor& feature_of(const ModelOutput& output, const std::string& name) {
  const auto found = output.features.find(name);
  if (found == output.features.end()) throw Error("the teacher returned no feature '" + name + "'");
  return found->second;
}

// Hashes (and teacher features) of every protected image.
ProtectedSet build_protected_set(const MineJob& job) {
  ProtectedSet set;
  const DataPipeline& pipeline = *job.protected_images;
  Loader loader(*pipeline.samples, *pipeline.sampler, pipeline.loader);
  loader.start(0);
  while (auto host = loader.next()) {
    if (host->images.size(0) == 0) continue;
    const std::vector<ImageHashes> hashes = perceptual_hashes_of_batch(host->images);
    for (size_t i = 0; i < hashes.size(); ++i)
      set.add(ProtectedImage{host->refs[i].source, host->refs[i].index}, hashes[i]);
    if (job.settings.dedup.feature) {
      const Batch batch = to_device(*host, pipeline, job.device, job.seed);
      set.add_features(feature_of(job.teacher->forward(batch.images, requested_features(job.settings)),
                                  job.settings.dedup.feature_name));
    }
  }
  return set;
}

std::string origin_of(const DataPipeline& pipeline, int32_t source, int64_t index) {
  try {
    return pipeline.sources.at(static_cast<size_t>(source))->get(index).origin;
  } catch (const std::exception&) {
    return pipeline.sources.at(static_cast<size_t>(source))->settings().label + "#" + std::to_string(index);
  }
}

// What streaming the candidates leaves: the counts and the per-class heaps, as a state holds them.
struct Mined {
  MineTally tally;
  CandidateSelection selection;
  int64_t protected_images = 0;
  bool done = false;
};

// A rank's state names its rank: a shard mined for another rank or world size is refused.
std::string state_identity(const MineJob& job, int64_t rank) {
  if (job.shard.world_size <= 1) return job.identity;
  return job.identity + "|rank " + std::to_string(rank) + " of " + std::to_string(job.shard.world_size);
}

void save_state(const MineFiles& files, const std::string& identity, const Mined& mined) {
  const nlohmann::json state = {{"identity", identity},
                                {"done", mined.done},
                                {"protected_images", mined.protected_images},
                                {"tally", mined.tally.to_json()},
                                {"selection", mined.selection.to_json()}};
  write_file_atomically(files.state().string(), state.dump() + "\n");
}

Mined read_state(const MineJob& job, const MineFiles& files, const std::string& identity) {
  const int64_t classes = job.teacher->teacher().num_classes();
  Mined mined{MineTally(classes, job.settings.histogram_bins), CandidateSelection(job.settings.selection, classes)};
  if (!std::filesystem::exists(files.state())) throw Error("no mining state at '" + files.state().string() + "'");
  const nlohmann::json state = read_json_file(files.state(), "mining state");
  if (!state.is_object() || !state.contains("identity") || state.at("identity") != identity)
    throw Error("'" + files.state().string() +
                "' was written for another config, teacher or rank; start over with --restart");
  try {
    mined.tally.load_json(state.at("tally"));
    mined.selection.load_json(state.at("selection"));
    mined.protected_images = state.contains("protected_images") ? json_int(state.at("protected_images")) : 0;
    mined.done = state.value("done", false);
  } catch (const std::exception& error) {  // ssld::Error from the checks, nlohmann's type errors
    throw Error("cannot read the mining state '" + files.state().string() + "': " + error.what() +
                "; start over with --restart");
  }
  return mined;
}

// Streams the candidates (from the saved state's position when resuming) through the teacher;
// the state in job.files is saved every checkpoint_every batches and after the last one.
Mined stream_candidates(const MineJob& job) {
  c10::NoGradGuard no_grad;
  const auto started = std::chrono::steady_clock::now();
  const MineSettings& settings = job.settings;
  const DataPipeline& candidates = *job.candidates;
  const int64_t classes = job.teacher->teacher().num_classes();
  const std::string identity = state_identity(job, job.shard.rank);
  fs::create_directories(job.files.folder);

  Mined mined{MineTally(classes, settings.histogram_bins), CandidateSelection(settings.selection, classes)};
  if (job.resume) {
    mined = read_state(job, job.files, identity);
    mined.done = false;
    fs::resize_file(job.files.removed_pairs(), static_cast<uintmax_t>(mined.tally.pairs_bytes));
    spdlog::info("resuming at batch {} ({} candidates seen)", mined.tally.next_step, mined.tally.seen);
  }
  MineTally& tally = mined.tally;
  CandidateSelection& selection = mined.selection;

  ProtectedSet protected_set;
  if (job.protected_images) {
    protected_set = build_protected_set(job);
    spdlog::info("{} protected images hashed", protected_set.size());
  }
  mined.protected_images = protected_set.size();
  std::ofstream pairs(job.files.removed_pairs(), job.resume ? std::ios::app : std::ios::trunc);
  if (!pairs) throw Error("cannot write '" + job.files.removed_pairs().string() + "'");
  if (!job.resume) pairs << "candidate\tprotected\tmethod\tsimilarity\n";

  // A candidate's position in the stream: the sources one after another. It breaks score ties.
  std::vector<int64_t> offsets;
  int64_t total = 0;
  for (const auto& source : candidates.sources) {
    offsets.push_back(total);
    total += source->size();
  }
  const int64_t steps = candidates.sampler->steps_per_epoch();
  const int64_t bad_before = candidates.samples->bad_images().count(), bad_saved = tally.bad_images;
  const double seconds_before = tally.seconds;
  const std::vector<std::string> features = requested_features(settings);

  Loader loader(*candidates.samples, *candidates.sampler, candidates.loader);
  loader.start(0, tally.next_step);
  int64_t last_log = tally.next_step;
  while (auto host = loader.next()) {
    const int64_t n = host->images.size(0);
    if (n > 0) {
      const Batch batch = to_device(*host, candidates, job.device, job.seed);
      const ModelOutput output = job.teacher->forward(batch.images, features);
      const at::Tensor probabilities = output.logits.to(at::kFloat).softmax(1).cpu().contiguous();
      if (probabilities.size(1) != classes)
        throw Error("the teacher returned " + std::to_string(probabilities.size(1)) + " classes, not " +
                    std::to_string(classes));
      std::vector<ImageHashes> hashes;
      if (settings.dedup.phash && protected_set.size() > 0) hashes = perceptual_hashes_of_batch(host->images);
      at::Tensor feature_rows, feature_cosines;
      if (settings.dedup.feature && protected_set.has_features())
        std::tie(feature_rows, feature_cosines) = protected_set.nearest_by_feature(feature_of(output, settings.dedup.feature_name));
      const float* p = probabilities.data_ptr<float>();
      const int64_t* ids = host->ids.data_ptr<int64_t>();
      for (int64_t i = 0; i < n; ++i) {
        const SampleRef& ref = host->refs[static_cast<size_t>(i)];
        const float* row = p + i * classes;
        Candidate candidate;
        candidate.position = offsets[static_cast<size_t>(ref.source)] + ref.index;
        candidate.source = ref.source;
        candidate.index = ref.index;
        candidate.id = static_cast<uint64_t>(ids[i]);
        candidate.predicted = std::max_element(row, row + classes) - row;
        candidate.probability = row[candidate.predicted];
        candidate.score = settings.selection.score == ScoreKind::Random
                              ? Rng(job.seed, 0, candidate.id, kRandomScorePurpose).uniform()
                              : confidence_score(row, classes, settings.selection.score);
        ++tally.predicted_per_class[static_cast<size_t>(candidate.predicted)];
        ++tally.histogram[static_cast<size_t>(histogram_bin(candidate.probability, settings.histogram_bins))];
        if (selection.screen(candidate) != CandidateSelection::Verdict::Kept) {
          selection.offer(candidate);  // counts why
          continue;
        }
        std::string method;
        int64_t protected_row = -1;
        double similarity = 0;
        if (!hashes.empty()) {
          const auto match = protected_set.nearest_by_hash(
              hashes[static_cast<size_t>(i)], static_cast<int>(settings.dedup.max_hamming), settings.dedup.min_correlation);
          if (match.row >= 0) {
            method = "phash:" + std::to_string(match.distance);
            protected_row = match.row;
            similarity = match.correlation;
          }
        }
        if (protected_row < 0 && feature_cosines.defined() &&
            feature_cosines[i].item<double>() >= settings.dedup.min_cosine) {
          method = "feature";
          protected_row = feature_rows[i].item<int64_t>();
          similarity = feature_cosines[i].item<double>();
        }
        if (protected_row >= 0) {
          const ProtectedImage& image = protected_set.image(protected_row);
          pairs << origin_of(candidates, ref.source, ref.index) << "\t"
                << origin_of(*job.protected_images, image.source, image.index) << "\t" << method << "\t" << similarity
                << "\n";
          ++tally.duplicates;
          continue;
        }
        selection.offer(candidate);
      }
    }
    tally.seen += n;
    tally.next_step = host->step + 1;
    const bool stop = stop_requested();
    if (stop || tally.next_step % settings.checkpoint_every == 0 || tally.next_step == steps) {
      pairs.flush();
      tally.pairs_bytes = static_cast<int64_t>(pairs.tellp());
      tally.bad_images = bad_saved + candidates.samples->bad_images().count() - bad_before;
      tally.seconds = seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      save_state(job.files, identity, mined);
      if (tally.next_step - last_log >= 10 * settings.checkpoint_every || tally.next_step == steps) {
        spdlog::info("mined {}/{} batches: {} candidates, {:.0f} images/s", tally.next_step, steps, tally.seen,
                     double(tally.seen) / std::max(1e-9, tally.seconds));
        last_log = tally.next_step;
      }
    }
    if (stop)
      throw Interrupted("stopped by a signal after batch " + std::to_string(tally.next_step) + " of " +
                        std::to_string(steps) + "; the state is saved in '" + job.files.state().string() +
                        "': continue with --resume");
  }
  pairs.close();
  return mined;
}

MineOutcome outcome_of(const Mined& mined, int64_t selected) {
  const MineTally& tally = mined.tally;
  return MineOutcome{tally.seen + tally.bad_images, selected, tally.duplicates, tally.seconds};
}

// Selects from the heaps and writes the list, the images it names and the summaries into
// `into`, then marks its state done.
MineOutcome write_results(const MineJob& job, Mined mined, const MineFiles& into) {
  const CandidateSelection::Result result = mined.selection.select();
  MineReport report;
  report.teacher = job.teacher->teacher().identity();
  report.score = name_of(job.settings.selection.score);
  report.class_names = job.class_names;
  report.protected_images = mined.protected_images;
  write_mine_outputs(into, job.settings, *job.candidates, mined.tally, result, report);
  mined.done = true;
  save_state(into, job.identity, mined);
  return outcome_of(mined, static_cast<int64_t>(result.selected.size()));
}

}  // namespace

MineOutcome mine(const MineJob& job) { return write_results(job, stream_candidates(job), job.files); }

MineOutcome mine_shard(const MineJob& job) {
  Mined mined = stream_candidates(job);
  mined.done = true;
  save_state(job.files, state_identity(job, job.shard.rank), mined);
  return outcome_of(mined, 0);
}

MineOutcome merge_mined_shards(const MineJob& job, const std::vector<MineFiles>& shards, const MineFiles& into) {
  const int64_t classes = job.teacher->teacher().num_classes();
  Mined merged{MineTally(classes, job.settings.histogram_bins), CandidateSelection(job.settings.selection, classes)};
  fs::create_directories(into.folder);
  std::ofstream pairs(into.removed_pairs(), std::ios::trunc);
  if (!pairs) throw Error("cannot write '" + into.removed_pairs().string() + "'");
  pairs << "candidate\tprotected\tmethod\tsimilarity\n";
  for (size_t rank = 0; rank < shards.size(); ++rank) {
    const Mined shard = read_state(job, shards[rank], state_identity(job, static_cast<int64_t>(rank)));
    if (!shard.done)
      throw Error("rank " + std::to_string(rank) + " has not finished its shard ('" + shards[rank].state().string() +
                  "'); run every rank again with --resume");
    merged.tally.merge(shard.tally);
    merged.selection.merge(shard.selection);
    merged.protected_images = std::max(merged.protected_images, shard.protected_images);
    std::ifstream rows(shards[rank].removed_pairs());
    std::string row;
    std::getline(rows, row);  // the header
    while (std::getline(rows, row)) pairs << row << "\n";
  }
  pairs.close();
  return write_results(job, std::move(merged), into);
}

}  // namespace ssld::host
