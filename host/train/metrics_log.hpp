// The run folder's metrics: one JSON object per line (per step and per epoch), and the same
// epoch rows as CSV for spreadsheets. Appends, so a resumed run continues the files.
#pragma once

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace ssld::host {

class MetricsLog {
 public:
  explicit MetricsLog(const std::filesystem::path& folder);
  void step(const std::vector<std::pair<std::string, double>>& values);
  void epoch(const std::vector<std::pair<std::string, double>>& values);

 private:
  std::ofstream steps_, epochs_, epochs_csv_;
  std::vector<std::string> csv_columns_;
};

}  // namespace ssld::host
