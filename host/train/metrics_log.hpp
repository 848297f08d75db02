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
  void open_csv(const std::vector<std::pair<std::string, double>>& values);

  std::ofstream steps_, epochs_, epochs_csv_;
  std::filesystem::path csv_path_;
  std::string existing_header_;  // of the CSV an earlier (resumed) run wrote; empty when none
};

// A CSV value: the shortest digits that read back to `value`, never in exponent notation.
std::string csv_number(double value);

}  // namespace ssld::host
