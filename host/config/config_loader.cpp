#include "config/config_loader.hpp"

#include "config/diagnostics.hpp"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace ssld::host {
namespace fs = std::filesystem;

namespace {

constexpr const char* kOverridePrefix = "--set ";

TomlValue parse_toml_text(const std::string& text, const std::string& name) {
  std::istringstream stream(text);
  return toml::parse<toml::discard_comments, std::map, std::vector>(stream, name);
}

TomlValue parse_file(const fs::path& path, const SourcePlace& included_from) {
  std::error_code error;
  if (!fs::is_regular_file(path, error))
    throw ConfigError(included_from, "config file '" + path.string() + "' does not exist or is not a file");
  try {
    return toml::parse<toml::discard_comments, std::map, std::vector>(path.string());
  } catch (const toml::syntax_error& syntax) {
    const toml::source_location& at = syntax.location();
    std::string detail = syntax.what();
    if (detail.rfind("[error] ", 0) == 0) detail.erase(0, 8);
    throw ConfigError(SourcePlace{path.string(), static_cast<int>(at.line()), static_cast<int>(at.column())},
                      "malformed TOML: " + detail);
  } catch (const std::runtime_error& io) {
    throw ConfigError(included_from, "cannot read config file '" + path.string() + "': " + io.what());
  }
}

}  // namespace

void merge_config(TomlValue& base, const TomlValue& overlay) {
  if (!base.is_table() || !overlay.is_table()) {
    base = overlay;
    return;
  }
  TomlTable& table = base.as_table();
  for (const auto& [key, value] : overlay.as_table()) {
    auto found = table.find(key);
    if (found != table.end() && found->second.is_table() && value.is_table())
      merge_config(found->second, value);
    else
      table[key] = value;
  }
}

namespace {

TomlValue load_with_bases(const fs::path& path, std::vector<fs::path>& chain, const SourcePlace& included_from) {
  const fs::path canonical = fs::weakly_canonical(path);
  for (const auto& seen : chain) {
    if (seen == canonical) {
      std::string cycle;
      for (const auto& link : chain) cycle += link.filename().string() + " -> ";
      throw ConfigError(included_from, "`base` cycle: " + cycle + canonical.filename().string() +
                                           "; a config may not inherit from itself");
    }
  }
  TomlValue document = parse_file(path, included_from);
  if (!document.is_table() || !document.contains("base")) return document;

  const TomlValue base_value = document.at("base");
  document.as_table().erase("base");
  std::vector<TomlValue> base_names;
  if (base_value.is_string()) {
    base_names.push_back(base_value);
  } else if (base_value.is_array()) {
    base_names = base_value.as_array();
  }
  if (base_names.empty())
    throw ConfigError(SourcePlace::of(base_value), "`base` must be a file name or a list of file names, got " +
                                                       toml_type_name(base_value));
  chain.push_back(canonical);
  TomlValue merged{TomlTable{}};
  for (const auto& name : base_names) {
    if (!name.is_string())
      throw ConfigError(SourcePlace::of(name), "`base` entries must be strings, got " + toml_type_name(name));
    const fs::path base_path = path.parent_path() / fs::path(name.as_string().str);
    merge_config(merged, load_with_bases(base_path, chain, SourcePlace::of(name)));
  }
  chain.pop_back();
  merge_config(merged, document);
  return merged;
}

std::string toml_basic_string(const std::string& text) {
  std::string quoted = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      quoted += '\\';
      quoted += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
      quoted += escaped;
    } else {
      quoted += c;
    }
  }
  return quoted + "\"";
}

bool is_index(const std::string& segment) {
  return !segment.empty() && segment.find_first_not_of("0123456789") == std::string::npos;
}

}  // namespace

void apply_override(TomlValue& root, const std::string& assignment) {
  const SourcePlace place{kOverridePrefix + assignment, 0, 0};
  const auto equals = assignment.find('=');
  if (equals == std::string::npos || equals == 0)
    throw ConfigError(place, "an override is written key.path=value, e.g. --set student.width=64");
  const std::string path = assignment.substr(0, equals);
  std::vector<std::string> segments;
  std::stringstream splitter(path);
  for (std::string segment; std::getline(splitter, segment, '.');) segments.push_back(segment);
  if (segments.empty() || path.back() == '.' || std::find(segments.begin(), segments.end(), "") != segments.end())
    throw ConfigError(place, "malformed key path '" + path + "'");
  if (segments.front() == "base") throw ConfigError(place, "`base` can only be set in a config file");

  TomlValue* node = &root;
  std::string walked;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const std::string& segment = segments[i];
    const bool last = i + 1 == segments.size();
    if (node->is_array()) {
      if (!is_index(segment) || std::stoul(segment) >= node->as_array().size())
        throw ConfigError(place, "'" + walked + "' is a list of " + std::to_string(node->as_array().size()) +
                                     " entries; '" + segment + "' is not an index into it");
      node = &node->as_array()[std::stoul(segment)];
    } else {
      if (!node->is_table()) {
        throw ConfigError(place, "'" + walked + "' is a " + toml_type_name(*node) + ", not a table");
      }
      TomlTable& table = node->as_table();
      if (last) {
        const TomlValue parsed =
            parse_toml_text("value = " + toml_basic_string(assignment.substr(equals + 1)), place.file);
        table[segment] = parsed.at("value");
        return;
      }
      if (table.find(segment) == table.end()) {
        if (is_index(segments[i + 1]))
          throw ConfigError(place, "'" + (walked.empty() ? segment : walked + "." + segment) +
                                       "' is not a list in the config; --set changes list entries but cannot create them");
        table[segment] = TomlValue(TomlTable{});
      }
      node = &table[segment];
    }
    walked += (walked.empty() ? "" : ".") + segment;
  }
  throw ConfigError(place, "an override must name a key, not a list entry");
}

bool is_override_text(const TomlValue& value) {
  return value.is_string() && value.location().file_name().rfind(kOverridePrefix, 0) == 0;
}

bool parse_override_text(const TomlValue& value, TomlValue& parsed) {
  try {
    parsed = parse_toml_text("value = " + value.as_string().str, value.location().file_name()).at("value");
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

TomlValue load_config(const fs::path& path, const std::vector<std::string>& overrides) {
  std::vector<fs::path> chain;
  TomlValue root = load_with_bases(path, chain, SourcePlace{path.string(), 0, 0});
  if (!root.is_table()) root = TomlValue(TomlTable{});
  for (const auto& assignment : overrides) apply_override(root, assignment);
  return root;
}

namespace {

// The folder a relative path in `value` is relative to: the file that wrote it, or the working
// directory for a --set value (which the child shares, but its config file does not).
fs::path source_folder(const TomlValue& value) {
  const SourcePlace place = SourcePlace::of(value);
  if (place.line <= 0 || place.file.rfind("--set ", 0) == 0) return fs::current_path();
  const fs::path folder = fs::path(place.file).parent_path();
  return folder.empty() ? fs::current_path() : fs::absolute(folder);
}

// See make_location_independent.
bool written_as_path(const std::string& text, const fs::path& folder) {
  if (text.empty() || fs::path(text).is_absolute()) return false;
  if (text.rfind("./", 0) == 0 || text.rfind("../", 0) == 0) return true;
  std::error_code ignored;
  const bool separator = text.find('/') != std::string::npos;
  if ((separator || text.find('.') != std::string::npos) && fs::exists(folder / text, ignored)) return true;
  return separator && fs::exists(folder / fs::path(text).begin()->string(), ignored);
}

}  // namespace

void make_location_independent(TomlValue& value) {
  if (is_override_text(value)) {
    TomlValue parsed;
    if (parse_override_text(value, parsed)) {
      value = parsed;
      if (!value.is_string()) return;
    }
  }
  if (value.is_string()) {
    const fs::path folder = source_folder(value);
    const std::string text = value.as_string().str;
    if (written_as_path(text, folder)) value = TomlValue((folder / text).lexically_normal().string());
  } else if (value.is_array()) {
    for (auto& item : value.as_array()) make_location_independent(item);
  } else if (value.is_table()) {
    for (auto& [key, item] : value.as_table()) make_location_independent(item);
  }
}

}  // namespace ssld::host
