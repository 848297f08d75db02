#include "train/metrics_log.hpp"

#include "core/errors.hpp"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <charconv>
#include <cmath>

namespace ssld::host {

MetricsLog::MetricsLog(const std::filesystem::path& folder)
    : steps_(folder / "metrics_steps.jsonl", std::ios::app), epochs_(folder / "metrics_epochs.jsonl", std::ios::app),
      csv_path_(folder / "metrics_epochs.csv") {
  std::ifstream existing(csv_path_);
  std::getline(existing, existing_header_);  // empty for a new file
}

namespace {
nlohmann::ordered_json to_json(const std::vector<std::pair<std::string, double>>& values) {
  nlohmann::ordered_json row = nlohmann::ordered_json::object();
  for (const auto& [key, value] : values) row[key] = value;
  return row;
}
}  // namespace

std::string csv_number(double value) {
  if (!std::isfinite(value)) return std::isnan(value) ? "nan" : (value > 0 ? "inf" : "-inf");
  // The shortest digits that read back to the same double, never in exponent notation: a
  // spreadsheet sees 1234567.25 seconds, not 1.23457e+06.
  char text[400];
  const auto written = std::to_chars(text, text + sizeof(text), value, std::chars_format::fixed);
  return std::string(text, written.ptr);
}

void MetricsLog::step(const std::vector<std::pair<std::string, double>>& values) {
  steps_ << to_json(values).dump() << "\n";
  steps_.flush();
}

void MetricsLog::epoch(const std::vector<std::pair<std::string, double>>& values) {
  epochs_ << to_json(values).dump() << "\n";
  epochs_.flush();
  if (!epochs_csv_.is_open()) open_csv(values);
  for (size_t i = 0; i < values.size(); ++i) epochs_csv_ << (i ? "," : "") << csv_number(values[i].second);
  epochs_csv_ << "\n";
  epochs_csv_.flush();
}

// Continues the CSV a resumed run wrote before when its columns are these; otherwise moves that
// file aside (nothing is lost) and starts one with this header.
void MetricsLog::open_csv(const std::vector<std::pair<std::string, double>>& values) {
  std::string header;
  for (const auto& [key, value] : values) header += (header.empty() ? "" : ",") + key;
  if (!existing_header_.empty() && existing_header_ != header) {
    std::filesystem::path aside;
    for (int n = 1; aside.empty() || std::filesystem::exists(aside); ++n)
      aside = csv_path_.parent_path() / ("metrics_epochs.before_resume." + std::to_string(n) + ".csv");
    std::error_code error;
    std::filesystem::rename(csv_path_, aside, error);
    if (error) throw Error("cannot move " + csv_path_.string() + " aside to " + aside.string() + ": " + error.message());
    spdlog::warn("{} has other columns than this run writes ({} instead of {}): moved it to {} and started a new one",
                 csv_path_.string(), existing_header_, header, aside.string());
    existing_header_.clear();
  }
  epochs_csv_.open(csv_path_, std::ios::app);
  if (existing_header_.empty()) epochs_csv_ << header << "\n";
}

}  // namespace ssld::host
