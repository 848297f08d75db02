#include "train/metrics_log.hpp"

#include <nlohmann/json.hpp>

namespace ssld::host {

MetricsLog::MetricsLog(const std::filesystem::path& folder)
    : steps_(folder / "metrics_steps.jsonl", std::ios::app), epochs_(folder / "metrics_epochs.jsonl", std::ios::app) {
  const auto csv = folder / "metrics_epochs.csv";
  const bool fresh = !std::filesystem::exists(csv) || std::filesystem::file_size(csv) == 0;
  epochs_csv_.open(csv, std::ios::app);
  if (!fresh) csv_columns_ = {"(existing)"};  // keep the header already written
}

namespace {
nlohmann::ordered_json to_json(const std::vector<std::pair<std::string, double>>& values) {
  nlohmann::ordered_json row = nlohmann::ordered_json::object();
  for (const auto& [key, value] : values) row[key] = value;
  return row;
}
}  // namespace

void MetricsLog::step(const std::vector<std::pair<std::string, double>>& values) {
  steps_ << to_json(values).dump() << "\n";
  steps_.flush();
}

void MetricsLog::epoch(const std::vector<std::pair<std::string, double>>& values) {
  epochs_ << to_json(values).dump() << "\n";
  epochs_.flush();
  if (csv_columns_.empty()) {
    for (const auto& [key, value] : values) {
      epochs_csv_ << (csv_columns_.empty() ? "" : ",") << key;
      csv_columns_.push_back(key);
    }
    epochs_csv_ << "\n";
  }
  for (size_t i = 0; i < values.size(); ++i) epochs_csv_ << (i ? "," : "") << values[i].second;
  epochs_csv_ << "\n";
  epochs_csv_.flush();
}

}  // namespace ssld::host
