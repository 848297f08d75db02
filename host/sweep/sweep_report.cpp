#include "sweep/sweep_report.hpp"

#include "core/atomic_file.hpp"
#include "sweep/sweep_manifest.hpp"
#include "log/svg_plot.hpp"

#include <ssld/error.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace ssld::host {
namespace fs = std::filesystem;

namespace {

// The summary.json fields a row shows, in column order.
const std::vector<std::string> kResultFields = {"best_top1", "best_top5",    "final_top1", "final_top5",
                                                "ema_top1",  "ema_top5",     "teacher_top1", "seconds",
                                                "images_per_second", "teacher_share"};

struct ReportRow {
  nlohmann::json run;     // the manifest entry
  std::string stage;      // the run's last stage, the one whose results are shown
  nlohmann::json result;  // its summary.json "result", or null
  std::vector<std::pair<double, double>> curve;  // (epoch, validation top-1) after each evaluated epoch
};

// The validation top-1 after each epoch, from the stage's metrics_epochs.jsonl.
std::vector<std::pair<double, double>> validation_curve(const fs::path& stage_folder) {
  std::vector<std::pair<double, double>> curve;
  std::ifstream in(stage_folder / "metrics_epochs.jsonl");
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json row = nlohmann::json::parse(line, nullptr, false);
    if (row.is_object() && row.contains("epoch") && row.contains("top1") && row.at("top1").is_number())
      curve.emplace_back(row.at("epoch").get<double>() + 1, row.at("top1").get<double>());
  }
  return curve;
}

std::vector<ReportRow> read_rows(const fs::path& sweep_folder, const nlohmann::json& manifest) {
  std::vector<ReportRow> rows;
  for (const auto& run : manifest.value("runs", nlohmann::json::array())) {
    ReportRow row{run, "", nullptr, {}};
    const auto stages = run.value("stages", std::vector<std::string>{});
    if (!stages.empty()) row.stage = stages.back();
    const fs::path summary = sweep_run_folder(sweep_folder, run.value("id", "")) / row.stage / "summary.json";
    if (!row.stage.empty() && fs::exists(summary)) {
      std::ifstream in(summary);
      row.result = nlohmann::json::parse(in, nullptr, false).value("result", nlohmann::json());
    }
    if (!row.stage.empty()) row.curve = validation_curve(summary.parent_path());
    rows.push_back(row);
  }
  return rows;
}

std::vector<std::string> axis_keys(const nlohmann::json& manifest) {
  std::vector<std::string> keys;
  const nlohmann::json axes = manifest.value("axes", nlohmann::json::object());
  for (const auto& [key, values] : axes.items()) keys.push_back(key);
  return keys;
}

// A result as text: accuracies and times with two decimals; "" where absent (negative: not measured).
std::string number(const nlohmann::json& result, const std::string& field) {
  if (!result.is_object() || !result.contains(field) || !result.at(field).is_number()) return "";
  const double value = result.at(field).get<double>();
  if (value < 0) return "";
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f", value);
  return text;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (const char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

std::string label(const nlohmann::json& run, const std::string& key) {
  const auto labels = run.value("labels", nlohmann::json::object());
  return labels.contains(key) ? labels.at(key).get<std::string>() : "";
}

std::string seed_text(const nlohmann::json& run) {
  return run.contains("seed") && run.at("seed").is_number() ? std::to_string(run.at("seed").get<int64_t>()) : "";
}

std::string results_csv(const std::vector<ReportRow>& rows, const std::vector<std::string>& axes) {
  std::ostringstream csv;
  csv << "id";
  for (const auto& key : axes) csv << "," << csv_field(key);
  csv << ",seed,status,stage";
  for (const auto& field : kResultFields) csv << "," << field;
  csv << "\n";
  for (const auto& row : rows) {
    csv << csv_field(row.run.value("id", ""));
    for (const auto& key : axes) csv << "," << csv_field(label(row.run, key));
    csv << "," << seed_text(row.run) << "," << row.run.value("status", "") << "," << csv_field(row.stage);
    for (const auto& field : kResultFields) csv << "," << number(row.result, field);
    csv << "\n";
  }
  return csv.str();
}

std::string or_dash(const std::string& text) { return text.empty() ? "-" : text; }

std::string runs_table(const std::vector<ReportRow>& rows, const std::vector<std::string>& axes) {
  std::ostringstream table;
  table << "| run |";
  for (const auto& key : axes) table << " " << key << " |";
  table << " seed | status | top-1 | top-5 | final top-1 | EMA top-1 | teacher top-1 | time (s) | images/s | "
           "teacher share |\n|---|";
  for (size_t i = 0; i < axes.size(); ++i) table << "---|";
  table << "---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& row : rows) {
    table << "| " << row.run.value("id", "") << " |";
    for (const auto& key : axes) table << " " << label(row.run, key) << " |";
    table << " " << or_dash(seed_text(row.run)) << " | " << row.run.value("status", "") << " |";
    for (const char* field : {"best_top1", "best_top5", "final_top1", "ema_top1", "teacher_top1", "seconds",
                              "images_per_second", "teacher_share"})
      table << " " << or_dash(number(row.result, field)) << " |";
    table << "\n";
  }
  return table.str();
}

struct Group {
  nlohmann::json run;  // the first run of the group, for its axis labels
  std::vector<double> best_top1, final_top1;
};

double mean(const std::vector<double>& values) {
  double sum = 0;
  for (const double value : values) sum += value;
  return values.empty() ? 0 : sum / static_cast<double>(values.size());
}

// Sample standard deviation (n - 1): the spread a further seed would be expected to show.
double standard_deviation(const std::vector<double>& values) {
  if (values.size() < 2) return 0;
  const double center = mean(values);
  double squares = 0;
  for (const double value : values) squares += (value - center) * (value - center);
  return std::sqrt(squares / static_cast<double>(values.size() - 1));
}

std::string fixed(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f", value);
  return text;
}

using Groups = std::vector<std::pair<std::string, Group>>;  // keyed by the assignment without the seed

// The finished runs grouped over seeds, the best mean top-1 first.
Groups group_over_seeds(const std::vector<ReportRow>& rows) {
  Groups groups;
  for (const auto& row : rows) {
    if (number(row.result, "best_top1").empty()) continue;
    const std::string key = row.run.value("assignment", nlohmann::json::object()).dump();
    auto found = std::find_if(groups.begin(), groups.end(), [&](const auto& group) { return group.first == key; });
    if (found == groups.end()) found = groups.insert(groups.end(), {key, Group{row.run, {}, {}}});
    found->second.best_top1.push_back(row.result.at("best_top1").get<double>());
    if (!number(row.result, "final_top1").empty()) found->second.final_top1.push_back(row.result.at("final_top1").get<double>());
  }
  std::stable_sort(groups.begin(), groups.end(),
                   [](const auto& a, const auto& b) { return mean(a.second.best_top1) > mean(b.second.best_top1); });
  return groups;
}

std::string grouped_table(const Groups& groups, const std::vector<std::string>& axes) {
  std::ostringstream table;
  table << "|";
  for (const auto& key : axes) table << " " << key << " |";
  table << " runs | top-1 mean | top-1 std | final top-1 mean |\n|";
  for (size_t i = 0; i < axes.size(); ++i) table << "---|";
  table << "---|---|---|---|\n";
  for (const auto& [key, group] : groups) {
    table << "|";
    for (const auto& axis : axes) table << " " << label(group.run, axis) << " |";
    const size_t n = group.best_top1.size();
    table << " " << n << " | " << fixed(mean(group.best_top1)) << " | "
          << (n > 1 ? fixed(standard_deviation(group.best_top1)) : "-") << " | "
          << (group.final_top1.empty() ? "-" : fixed(mean(group.final_top1))) << " |\n";
  }
  return table.str();
}

std::vector<PlotPoint> plot_points(const Groups& groups, const std::vector<std::string>& axes) {
  std::vector<PlotPoint> points;
  for (const auto& [key, group] : groups) {
    std::string name;
    for (const auto& axis : axes) name += (name.empty() ? "" : ", ") + label(group.run, axis);
    points.push_back(PlotPoint{name.empty() ? "all" : name, mean(group.best_top1), standard_deviation(group.best_top1),
                               group.best_top1.size()});
  }
  return points;
}

std::string failures(const std::vector<ReportRow>& rows) {
  std::string text;
  for (const auto& row : rows) {
    if (row.run.value("status", "") != kRunFailed) continue;
    const auto& code = row.run.contains("exit_code") ? row.run.at("exit_code") : nlohmann::json();
    text += "- `" + row.run.value("id", "") + "` (exit code " + (code.is_number() ? code.dump() : "-") +
            "): " + row.run.value("error", "") + "\n";
  }
  return text;
}

std::string seeds_text(const nlohmann::json& manifest) {
  const nlohmann::json seeds = manifest.value("seeds", nlohmann::json::array());
  if (seeds.empty()) return "no seeds (each run keeps [run] seed)";
  std::string text;
  for (const auto& seed : seeds) text += (text.empty() ? "" : ", ") + seed.dump();
  return "seeds " + text;
}

std::string results_markdown(const fs::path& sweep_folder, const nlohmann::json& manifest,
                             const std::vector<ReportRow>& rows, const std::vector<std::string>& axes) {
  size_t done = 0, failed = 0;
  for (const auto& row : rows) {
    done += row.run.value("status", "") == kRunDone;
    failed += row.run.value("status", "") == kRunFailed;
  }
  std::ostringstream md;
  md << "# Sweep " << sweep_folder.filename().string() << "\n\n"
     << "Config `" << manifest.value("config", "") << "`, mode " << manifest.value("mode", "grid") << ", "
     << seeds_text(manifest) << ": " << rows.size() << " runs, " << done
     << " done, " << failed << " failed, " << rows.size() - done - failed << " pending.\n\n"
     << "## Runs\n\nResults of each run's last stage (accuracies in %; teacher share: the fraction of step time "
     << "spent getting the teacher's soft labels, run online or read from the teacher cache; validation curves "
     << "in curves.svg).\n\n"
     << runs_table(rows, axes) << "\n## Over seeds\n\nBest top-1 (%) of the finished runs, best first "
     << "(plotted in top1.svg).\n\n"
     << grouped_table(group_over_seeds(rows), axes);
  const std::string failed_runs = failures(rows);
  if (!failed_runs.empty()) md << "\n## Failed runs\n\nEach run's folder has its error.txt.\n\n" << failed_runs;
  return md.str();
}

}  // namespace

std::string write_sweep_report(const fs::path& sweep_folder) {
  const nlohmann::json manifest = read_sweep_manifest(sweep_folder);
  if (manifest.is_null())
    throw Error("'" + sweep_folder.string() + "' is not a sweep folder: it has no manifest.json (`ssld sweep` writes one)");
  std::vector<ReportRow> rows;
  std::vector<std::string> axes;
  std::string markdown;
  try {  // the manifest and the runs' summaries are read back: a mistyped field is damage, named
    rows = read_rows(sweep_folder, manifest);
    axes = axis_keys(manifest);
    markdown = results_markdown(sweep_folder, manifest, rows, axes);
  } catch (const nlohmann::json::exception& error) {
    throw Error("the sweep folder '" + sweep_folder.string() + "' holds a damaged manifest.json or summary.json (" +
                error.what() + "): delete manifest.json and run `ssld sweep` again to plan the sweep anew (finished "
                "runs are found again)");
  }
  write_file_atomically((sweep_folder / "results.csv").string(), results_csv(rows, axes));
  write_file_atomically((sweep_folder / "results.md").string(), markdown);
  write_file_atomically((sweep_folder / "top1.svg").string(),
                        top1_plot(plot_points(group_over_seeds(rows), axes), "Best top-1 (%), mean and std over seeds"));
  std::vector<Curve> curves;
  for (const auto& row : rows)
    if (!row.curve.empty()) curves.push_back(Curve{row.run.value("id", ""), row.curve});
  write_file_atomically((sweep_folder / "curves.svg").string(),
                        line_plot(curves, "Validation top-1 (%) per epoch", {"epoch", "top-1 (%)", 2}));
  return markdown;
}

}  // namespace ssld::host
