#include "config/diagnostics.hpp"

#include <algorithm>
#include <sstream>

namespace ssld::host {

std::string SourcePlace::str() const {
  if (line <= 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

SourcePlace SourcePlace::of(const TomlValue& value) {
  const toml::source_location location = value.location();
  if (location.file_name() == "unknown file") return SourcePlace{"(default)", 0, 0};
  if (location.file_name().rfind("--set ", 0) == 0) return SourcePlace{location.file_name(), 0, 0};
  return SourcePlace{location.file_name(), static_cast<int>(location.line()),
                     static_cast<int>(location.column())};
}

std::string toml_type_name(const TomlValue& value) {
  switch (value.type()) {
    case toml::value_t::boolean: return "bool";
    case toml::value_t::integer: return "integer";
    case toml::value_t::floating: return "float";
    case toml::value_t::string: return "string";
    case toml::value_t::array: return "array";
    case toml::value_t::table: return "table";
    case toml::value_t::empty: return "nothing";
    default: return "date/time";
  }
}

void Diagnostics::add(SourcePlace place, std::string message) {
  // Every stage re-validates the tables it shares with the others: report a problem once.
  for (const auto& item : items_)
    if (item.message == message && item.place.str() == place.str()) return;
  items_.push_back(Diagnostic{std::move(place), std::move(message)});
}

void Diagnostics::throw_if_any() const {
  if (!items_.empty()) throw ConfigError(items_);
}

namespace {
std::string render(std::vector<Diagnostic>& problems) {
  std::stable_sort(problems.begin(), problems.end(), [](const Diagnostic& a, const Diagnostic& b) {
    if (a.place.file != b.place.file) return a.place.file < b.place.file;
    if (a.place.line != b.place.line) return a.place.line < b.place.line;
    return a.place.column < b.place.column;
  });
  std::ostringstream text;
  if (problems.size() > 1) text << problems.size() << " problems in the config:\n";
  for (std::size_t i = 0; i < problems.size(); ++i) {
    if (problems.size() > 1) text << "  ";
    text << problems[i].place.str() << ": " << problems[i].message;
    if (i + 1 < problems.size()) text << "\n";
  }
  return text.str();
}
}  // namespace

ConfigError::ConfigError(std::vector<Diagnostic> problems)
    : HostError(render(problems)), problems_(std::move(problems)) {}

ConfigError::ConfigError(SourcePlace place, const std::string& message)
    : ConfigError(std::vector<Diagnostic>{Diagnostic{std::move(place), message}}) {}

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  auto distance = [](const std::string& a, const std::string& b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
      std::size_t diagonal = row[0];
      row[0] = i;
      for (std::size_t j = 1; j <= b.size(); ++j) {
        const std::size_t above = row[j];
        row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
        diagonal = above;
      }
    }
    return row[b.size()];
  };
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(2, word.size() / 3) + 1;  // typo-sized
  for (const auto& candidate : candidates) {
    const std::size_t d = distance(word, candidate);
    if (d < best_distance) {
      best_distance = d;
      best = candidate;
    }
  }
  return best;
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string best = closest_match(word, candidates);
  return best.empty() ? std::string() : "; did you mean '" + best + "'?";
}

}  // namespace ssld::host
