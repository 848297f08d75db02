#include "mine/mine_report.hpp"

#include "core/atomic_file.hpp"
#include "core/bounded_input.hpp"
#include "core/errors.hpp"
#include "data/image_decode.hpp"

#include <ssld/error.hpp>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace ssld::host {

namespace fs = std::filesystem;

nlohmann::json MineTally::to_json() const {
  return {{"next_step", next_step},   {"seen", seen},
          {"bad_images", bad_images}, {"duplicates", duplicates},
          {"pairs_bytes", pairs_bytes}, {"seconds", seconds},
          {"predicted_per_class", predicted_per_class}, {"histogram", histogram}};
}

void MineTally::load_json(const nlohmann::json& state) {
  next_step = json_int(state.at("next_step"));
  seen = json_int(state.at("seen"));
  bad_images = json_int(state.at("bad_images"));
  duplicates = json_int(state.at("duplicates"));
  pairs_bytes = json_int(state.at("pairs_bytes"));
  seconds = state.at("seconds").get<double>();
  auto integers = [](const nlohmann::json& list) {
    std::vector<int64_t> out;
    for (const auto& item : list) out.push_back(json_int(item));
    return out;
  };
  if (!state.at("predicted_per_class").is_array() || !state.at("histogram").is_array())
    throw Error("its tally's counts are not lists");
  auto counts = integers(state.at("predicted_per_class"));
  auto bins = integers(state.at("histogram"));
  // The miner indexes these by class and bin: a state of another class count is refused.
  if (counts.size() != predicted_per_class.size() || bins.size() != histogram.size())
    throw Error("its tally has " + std::to_string(counts.size()) + " classes and " + std::to_string(bins.size()) +
                " histogram bins, not " + std::to_string(predicted_per_class.size()) + " and " +
                std::to_string(histogram.size()));
  predicted_per_class = std::move(counts);
  histogram = std::move(bins);
}

void MineTally::merge(const MineTally& other) {
  seen += other.seen;
  bad_images += other.bad_images;
  duplicates += other.duplicates;
  seconds = std::max(seconds, other.seconds);
  for (size_t c = 0; c < predicted_per_class.size() && c < other.predicted_per_class.size(); ++c)
    predicted_per_class[c] += other.predicted_per_class[c];
  for (size_t b = 0; b < histogram.size() && b < other.histogram.size(); ++b) histogram[b] += other.histogram[b];
}

int64_t histogram_bin(double value, int64_t bins) {
  return std::clamp<int64_t>(static_cast<int64_t>(value * static_cast<double>(bins)), 0, bins - 1);
}

namespace {

std::string fixed(double value, int digits = 6) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.*f", digits, value);
  return text;
}

struct ListedImage {
  std::string path;    // as the list names it
  std::string origin;  // where the sample came from (Sample::origin)
};

// Where the list names a selected candidate: its own file when it has one, otherwise a PNG
// written under images/<class>/ (IDX and generated datasets have no files), named by the
// sample's stable id (prefixed by its source's position when the candidates have several
// sources, whose ids may repeat) so that it leads back to its sample.
ListedImage listed_image(const MineFiles& files, const DatasetView& source, const Candidate& candidate,
                         bool several_sources) {
  Sample sample = source.get(candidate.index);
  if (!sample.encoded.empty() && fs::is_regular_file(sample.origin))
    return {fs::absolute(sample.origin).string(), sample.origin};
  at::Tensor image = sample.image.defined() ? sample.image : decode_image(sample.encoded);
  image = image.contiguous();
  const int channels = static_cast<int>(image.size(2));
  cv::Mat mat(static_cast<int>(image.size(0)), static_cast<int>(image.size(1)), CV_8UC(channels), image.data_ptr<uint8_t>());
  cv::Mat bgr;
  if (channels == 3) cv::cvtColor(mat, bgr, cv::COLOR_RGB2BGR);
  else bgr = mat;
  const std::string name =
      (several_sources ? std::to_string(candidate.source) + "_" : std::string()) + std::to_string(candidate.id);
  const std::string relative = "images/" + std::to_string(candidate.predicted) + "/" + name + ".png";
  if (!cv::imwrite((files.folder / relative).string(), bgr))
    throw DataError("cannot write '" + (files.folder / relative).string() + "'");
  return {relative, sample.origin};
}

std::string class_name(const MineReport& report, size_t c) {
  return c < report.class_names.size() ? report.class_names[c] : std::to_string(c);
}

}  // namespace

void write_mine_outputs(const MineFiles& files, const MineSettings& settings, const DataPipeline& candidates,
                        const MineTally& tally, const CandidateSelection::Result& result, const MineReport& report) {
  const auto& selected = result.selected;
  const size_t classes = tally.predicted_per_class.size();
  for (size_t c = 0; c < classes; ++c) fs::create_directories(files.images() / std::to_string(c));
  std::vector<ListedImage> listed(selected.size());
  const bool several_sources = candidates.sources.size() > 1;
  tbb::parallel_for(size_t{0}, selected.size(), [&](size_t i) {
    const Candidate& candidate = selected[i];
    try {
      listed[i] = listed_image(files, *candidates.sources.at(static_cast<size_t>(candidate.source)), candidate,
                               several_sources);
    } catch (const std::exception& error) {
      throw DataError("writing the mined list: candidate " + std::to_string(candidate.position) + ": " + error.what());
    }
  });
  std::error_code not_empty;  // remove() takes only empty folders: the classes without written images
  for (size_t c = 0; c < classes; ++c) fs::remove(files.images() / std::to_string(c), not_empty);
  fs::remove(files.images(), not_empty);

  std::ostringstream list;
  list << "# ssld mine: " << selected.size() << " images chosen by " << report.teacher << "\n"
       << "# columns: path class probability score(" << report.score
       << ") source; relative paths are relative to this folder; source (the rest of the line) is where the image "
          "came from: its file, or file#index\n";
  std::vector<int64_t> selected_per_class(classes), selected_histogram(tally.histogram.size());
  std::vector<double> score_sum(classes);
  for (size_t i = 0; i < selected.size(); ++i) {
    const Candidate& candidate = selected[i];
    list << listed[i].path << " " << candidate.predicted << " " << fixed(candidate.probability) << " "
         << fixed(candidate.score) << " " << listed[i].origin << "\n";
    ++selected_per_class[static_cast<size_t>(candidate.predicted)];
    score_sum[static_cast<size_t>(candidate.predicted)] += candidate.score;
    ++selected_histogram[static_cast<size_t>(histogram_bin(candidate.probability, settings.histogram_bins))];
  }
  write_file_atomically(files.list().string(), list.str());

  const RejectionCounts& r = result.rejections;
  const nlohmann::json rejected = {{"class_not_selected", r.class_not_selected},
                                   {"below_min_confidence", r.below_min_confidence},
                                   {"duplicate_of_protected", tally.duplicates},
                                   {"not_in_top_k", r.not_in_top_k},
                                   {"class_balance", r.class_balance},
                                   {"over_max_total", r.over_max_total},
                                   {"bad_image", tally.bad_images}};
  nlohmann::json per_class = nlohmann::json::array();
  for (size_t c = 0; c < classes; ++c)
    per_class.push_back({{"class", c},
                         {"name", class_name(report, c)},
                         {"predicted", tally.predicted_per_class[c]},
                         {"selected", selected_per_class[c]},
                         {"mean_score", selected_per_class[c] ? score_sum[c] / double(selected_per_class[c]) : 0.0}});
  std::vector<double> edges;
  for (int64_t b = 0; b <= settings.histogram_bins; ++b) edges.push_back(double(b) / double(settings.histogram_bins));
  const nlohmann::json summary = {
      {"teacher", report.teacher},
      {"score", report.score},
      {"candidates", tally.seen + tally.bad_images},
      {"scored", tally.seen},
      {"selected", selected.size()},
      {"protected_images", report.protected_images},
      {"rejected", rejected},
      {"per_class", per_class},
      {"confidence_histogram", {{"edges", edges}, {"all", tally.histogram}, {"selected", selected_histogram}}},
      {"seconds", tally.seconds},
      {"images_per_second", tally.seconds > 0 ? double(tally.seen) / tally.seconds : 0.0},
      {"list", files.list().string()},
      {"removed_pairs", files.removed_pairs().string()}};
  write_file_atomically(files.summary_json().string(), summary.dump(2) + "\n");

  std::ostringstream md;
  md << "# ssld mine\n\n" << selected.size() << " of " << tally.seen + tally.bad_images << " candidates selected by "
     << report.teacher << " (score: " << report.score << "), " << fixed(tally.seconds, 1) << " s.\n\n"
     << "| class | name | predicted | selected | mean score |\n|---|---|---|---|---|\n";
  for (size_t c = 0; c < classes; ++c)
    md << "| " << c << " | " << class_name(report, c) << " | " << tally.predicted_per_class[c] << " | "
       << selected_per_class[c] << " | " << fixed(per_class[c]["mean_score"].get<double>(), 4) << " |\n";
  md << "\n| confidence (max probability) | all candidates | selected |\n|---|---|---|\n";
  for (size_t b = 0; b < tally.histogram.size(); ++b)
    md << "| " << fixed(edges[b], 2) << " - " << fixed(edges[b + 1], 2) << " | " << tally.histogram[b] << " | "
       << selected_histogram[b] << " |\n";
  md << "\n| rejected because | images |\n|---|---|\n";
  for (const auto& [reason, count] : rejected.items()) md << "| " << reason << " | " << count.get<int64_t>() << " |\n";
  md << "\nRemoved near-duplicates of the " << report.protected_images << " protected images: `"
     << files.removed_pairs().filename().string() << "`.\n";
  write_file_atomically(files.summary_markdown().string(), md.str());
}

}  // namespace ssld::host
