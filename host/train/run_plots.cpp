#include "train/run_plots.hpp"

#include "core/atomic_file.hpp"
#include "log/svg_plot.hpp"

#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <string>

namespace ssld::host {

namespace {

constexpr size_t kMostPoints = 2000;

// The JSON objects of a .jsonl file, skipping what does not parse.
std::vector<nlohmann::json> json_lines(const std::filesystem::path& file) {
  std::vector<nlohmann::json> rows;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    nlohmann::json row = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (row.is_object()) rows.push_back(std::move(row));
  }
  return rows;
}

double number_at(const nlohmann::json& row, const std::string& key) {
  const auto found = row.find(key);
  return found != row.end() && found->is_number() ? found->get<double>() : std::nan("");
}

// At most kMostPoints: consecutive points averaged in equal buckets.
std::vector<std::pair<double, double>> thinned(const std::vector<std::pair<double, double>>& points) {
  if (points.size() <= kMostPoints) return points;
  const size_t bucket = (points.size() + kMostPoints - 1) / kMostPoints;
  std::vector<std::pair<double, double>> out;
  for (size_t start = 0; start < points.size(); start += bucket) {
    const size_t end = std::min(points.size(), start + bucket);
    double x = 0, y = 0;
    for (size_t i = start; i < end; ++i) x += points[i].first, y += points[i].second;
    out.emplace_back(x / static_cast<double>(end - start), y / static_cast<double>(end - start));
  }
  return out;
}

// One curve per key present in the rows, x from `x_key` (plus `x_offset`).
std::vector<Curve> curves_of(const std::vector<nlohmann::json>& rows, const std::string& x_key, double x_offset,
                             const std::vector<std::pair<std::string, std::string>>& keys_and_labels) {
  std::vector<Curve> curves;
  for (const auto& [key, label] : keys_and_labels) {
    Curve curve{label, {}};
    for (const auto& row : rows) {
      const double x = number_at(row, x_key) + x_offset, y = number_at(row, key);
      if (std::isfinite(x) && std::isfinite(y)) curve.points.emplace_back(x, y);
    }
    curve.points = thinned(curve.points);
    if (!curve.points.empty()) curves.push_back(std::move(curve));
  }
  return curves;
}

}  // namespace

std::vector<std::filesystem::path> write_stage_plots(const std::filesystem::path& folder) {
  std::vector<std::filesystem::path> written;
  const std::string stage = folder.filename().string();
  auto write = [&](const char* name, const std::string& svg) {
    write_file_atomically((folder / name).string(), svg);
    written.push_back(folder / name);
  };
  const auto steps = json_lines(folder / "metrics_steps.jsonl");
  if (!steps.empty()) {
    std::vector<std::pair<std::string, std::string>> terms = {{"loss", "loss (weighted sum)"}};
    std::map<std::string, bool> seen;
    for (const auto& row : steps)
      for (const auto& [key, value] : row.items())
        if (key.rfind("loss/", 0) == 0 && !seen[key]) seen[key] = true, terms.emplace_back(key, key.substr(5));
    write("loss.svg", line_plot(curves_of(steps, "global_step", 0, terms), "Stage " + stage + ": training loss",
                                {"step", "loss (mean since the last point)", 0}));
    write("lr.svg", line_plot(curves_of(steps, "global_step", 0, {{"lr", "learning rate"}}),
                              "Stage " + stage + ": learning rate", {"step", "learning rate", 0}));
  }
  const auto epochs = json_lines(folder / "metrics_epochs.jsonl");
  if (!epochs.empty()) {
    std::vector<Curve> accuracy = curves_of(epochs, "epoch", 1,
                                            {{"top1", "top-1"}, {"top5", "top-5"}, {"ema_top1", "EMA top-1"},
                                             {"ema_top5", "EMA top-5"}});
    std::ifstream summary_file(folder / "summary.json");
    const nlohmann::json summary = nlohmann::json::parse(summary_file, nullptr, false);
    if (summary.is_object() && summary.contains("result") && summary["result"].is_object()) {
      const double teacher = number_at(summary["result"], "teacher_top1");
      if (std::isfinite(teacher) && teacher >= 0 && !accuracy.empty())
        accuracy.push_back(Curve{"teacher top-1", {{accuracy[0].points.front().first, teacher},
                                                   {accuracy[0].points.back().first, teacher}}});
    }
    write("accuracy.svg", line_plot(accuracy, "Stage " + stage + ": validation accuracy (%)", {"epoch", "%", 2}));
  }
  return written;
}

std::vector<std::filesystem::path> write_run_plot(const std::filesystem::path& run_folder,
                                                  const std::vector<std::filesystem::path>& stage_folders) {
  std::vector<Curve> curves;
  double epochs_before = 0;
  for (const auto& folder : stage_folders) {
    std::vector<Curve> top1 = curves_of(json_lines(folder / "metrics_epochs.jsonl"), "epoch", epochs_before + 1,
                                        {{"top1", folder.filename().string() + " top-1"}});
    if (top1.empty()) continue;
    epochs_before = top1[0].points.back().first;
    curves.push_back(std::move(top1[0]));
  }
  if (curves.empty()) return {};
  const auto file = run_folder / "accuracy.svg";
  write_file_atomically(file.string(), line_plot(curves, "Validation top-1 (%) of every stage, in order",
                                                 {"epoch (counted on across the stages)", "top-1 (%)", 2}));
  return {file};
}

}  // namespace ssld::host
