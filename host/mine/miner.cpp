#include "mine/miner.hpp"

#include "data/data_error.hpp"
#include "data/device_batch.hpp"
#include "data/loader.hpp"
#include "mine/dedup.hpp"
#include "weights/safetensors.hpp"

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

void save_state(const MineJob& job, const MineTally& tally, const CandidateSelection& selection, bool done) {
  const nlohmann::json state = {{"identity", job.identity}, {"done", done}, {"tally", tally.to_json()},
                                {"selection", selection.to_json()}};
  write_file_atomically(job.files.state().string(), state.dump() + "\n");
}

}  // namespace

MineOutcome mine(const MineJob& job) {
  c10::NoGradGuard no_grad;
  const auto started = std::chrono::steady_clock::now();
  const MineSettings& settings = job.settings;
  const DataPipeline& candidates = *job.candidates;
  const int64_t classes = job.teacher->num_classes();
  fs::create_directories(job.files.folder);

  CandidateSelection selection(settings.selection, classes);
  MineTally tally(classes, settings.histogram_bins);
  if (job.resume) {
    std::ifstream in(job.files.state());
    nlohmann::json state;
    try {
      in >> state;
    } catch (const std::exception& error) {
      throw Error("cannot read the mining state '" + job.files.state().string() + "': " + error.what() +
                  "; start over with --restart");
    }
    if (state.value("identity", "") != job.identity)
      throw Error("'" + job.files.state().string() +
                  "' was written for another config or teacher; start over with --restart");
    tally.load_json(state.at("tally"));
    selection.load_json(state.at("selection"));
    fs::resize_file(job.files.removed_pairs(), static_cast<uintmax_t>(tally.pairs_bytes));
    spdlog::info("resuming at batch {} ({} candidates seen)", tally.next_step, tally.seen);
  }

  ProtectedSet protected_set;
  if (job.protected_images) {
    protected_set = build_protected_set(job);
    spdlog::info("{} protected images hashed", protected_set.size());
  }
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
    if (tally.next_step % settings.checkpoint_every == 0 || tally.next_step == steps) {
      pairs.flush();
      tally.pairs_bytes = static_cast<int64_t>(pairs.tellp());
      tally.bad_images = bad_saved + candidates.samples->bad_images().count() - bad_before;
      tally.seconds = seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      save_state(job, tally, selection, false);
      if (tally.next_step - last_log >= 10 * settings.checkpoint_every || tally.next_step == steps) {
        spdlog::info("mined {}/{} batches: {} candidates, {:.0f} images/s", tally.next_step, steps, tally.seen,
                     double(tally.seen) / std::max(1e-9, tally.seconds));
        last_log = tally.next_step;
      }
    }
  }
  pairs.close();

  const CandidateSelection::Result result = selection.select();
  MineReport report;
  report.teacher = job.teacher->identity();
  report.score = name_of(settings.selection.score);
  report.class_names = job.class_names;
  report.protected_images = protected_set.size();
  write_mine_outputs(job.files, settings, candidates, tally, result, report);
  save_state(job, tally, selection, true);
  return MineOutcome{tally.seen + tally.bad_images, static_cast<int64_t>(result.selected.size()), tally.duplicates,
                     tally.seconds};
}

}  // namespace ssld::host
