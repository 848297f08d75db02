#include "config/config_loader.hpp"

#include "config/key_path.hpp"

#include "config/diagnostics.hpp"
#include "core/bounded_input.hpp"

#include <ssld/error.hpp>

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace ssld::host {
namespace fs = std::filesystem;

namespace {

constexpr const char* kOverridePrefix = "--set ";

// toml11 parses, and ssld walks, nested arrays, inline tables and dotted keys recursively: a
// file nested thousands deep would exhaust the stack. Real configs nest a few levels.
constexpr int kMaxNesting = 32;
constexpr uint64_t kMaxConfigBytes = 16 << 20;

// Refuses text whose brackets or dotted keys nest deeper than kMaxNesting, before toml11 sees
// it. Strings and comments are skipped; the count is conservative (a float's '.' resets at ',').
void check_nesting(const std::string& text, const std::string& name) {
  int depth = 0, dots = 0, line = 1;
  auto refuse = [&](const std::string& what) {
    throw ConfigError(SourcePlace{name, line, 0}, what + " nest deeper than " + std::to_string(kMaxNesting) +
                                                      " levels; no ssld config needs that");
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n') ++line;
    if (c == '#') {
      while (i + 1 < text.size() && text[i + 1] != '\n') ++i;
    } else if (c == '"' || c == '\'') {
      const bool multi_line = text.compare(i, 3, std::string(3, c)) == 0;
      const std::string close = multi_line ? std::string(3, c) : std::string(1, c);
      for (i += close.size(); i < text.size() && text.compare(i, close.size(), close) != 0; ++i) {
        if (text[i] == '\n') ++line;
        if (c == '"' && text[i] == '\\') ++i;  // an escaped character, in basic strings only
      }
      i += close.size() - 1;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxNesting) refuse("arrays or inline tables");
      dots = 0;
    } else if (c == ']' || c == '}') {
      depth = std::max(0, depth - 1);
    } else if (c == '.') {
      if (++dots > kMaxNesting) refuse("dotted keys or table headers");
    } else if (c == '=' || c == ',' || c == '\n') {
      dots = 0;
    }
  }
}

// TOML is UTF-8 text, and toml11 reads past its buffer on some invalid sequences in literal
// strings (found by the config fuzz target): refused, with the line, before it parses.
void check_utf8(const std::string& text, const std::string& name) {
  int line = 1;
  for (size_t i = 0; i < text.size();) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte == '\n') ++line;
    size_t length = byte < 0x80 ? 1 : (byte >> 5) == 0x6 ? 2 : (byte >> 4) == 0xE ? 3 : (byte >> 3) == 0x1E ? 4 : 0;
    uint32_t code = length == 1 ? byte : length == 2 ? byte & 0x1F : length == 3 ? byte & 0x0F : byte & 0x07;
    bool valid = length > 0 && i + length <= text.size();
    for (size_t k = 1; valid && k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      valid = (next >> 6) == 0x2;
      code = (code << 6) | (next & 0x3F);
    }
    static constexpr uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
    valid = valid && code >= kSmallest[length] && code <= 0x10FFFF && (code < 0xD800 || code > 0xDFFF);
    if (!valid)
      throw ConfigError(SourcePlace{name, line, 0}, "is not valid UTF-8 text (byte " + std::to_string(i) +
                                                        "); TOML files are UTF-8");
    i += length;
  }
}

TomlValue parse_toml_text(const std::string& text, const std::string& name) {
  check_utf8(text, name);
  check_nesting(text, name);
  std::istringstream stream(text);
  return toml::parse<toml::discard_comments, std::map, std::vector>(stream, name);
}

TomlValue parse_file(const fs::path& path, const SourcePlace& included_from) {
  std::string text;
  std::error_code error;
  if (!fs::is_regular_file(path, error))
    throw ConfigError(included_from, "config file '" + path.string() + "' does not exist or is not a file");
  try {
    text = read_regular_file(path, kMaxConfigBytes, "config file");
  } catch (const Error& error) {
    throw ConfigError(included_from, error.what());
  }
  try {
    return parse_toml_text(text, path.string());
  } catch (const toml::syntax_error& syntax) {
    const toml::source_location& at = syntax.location();
    std::string detail = syntax.what();
    if (detail.rfind("[error] ", 0) == 0) detail.erase(0, 8);
    throw ConfigError(SourcePlace{path.string(), static_cast<int>(at.line()), static_cast<int>(at.column())},
                      "malformed TOML: " + detail);
  } catch (const ConfigError&) {
    throw;
  } catch (const std::runtime_error& io) {
    throw ConfigError(included_from, "cannot read config file '" + path.string() + "': " + io.what());
  }
}

}  // namespace

TomlValue parse_config_text(const std::string& text, const std::string& name) { return parse_toml_text(text, name); }

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
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {  // TOML allows neither raw
      char escaped[8];
      std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
      quoted += escaped;
    } else {
      quoted += c;
    }
  }
  return quoted + "\"";
}

}  // namespace

void apply_override(TomlValue& root, const std::string& assignment) {
  const SourcePlace place{kOverridePrefix + assignment, 0, 0};
  check_utf8(assignment, place.file);  // the key path too: it becomes a table key (found by the fuzz target)
  const auto equals = assignment.find('=');
  if (equals == std::string::npos || equals == 0)
    throw ConfigError(place, "an override is written key.path=value, e.g. --set student.width=64");
  const std::string path = assignment.substr(0, equals);
  const std::vector<std::string> parts = split_key_path(path, place, "");
  if (parts.front() == "base") throw ConfigError(place, "`base` can only be set in a config file");
  if (parts.size() > kMaxNesting)
    throw ConfigError(place, "a key path of " + std::to_string(parts.size()) + " parts; at most " +
                                 std::to_string(kMaxNesting) + " are allowed");
  TomlValue& slot = value_at_key_path(root, parts, place, KeyPathWalk{false, ""});
  const std::string text = assignment.substr(equals + 1);
  // A quoted string always parses: check_utf8 above refused what toml11 would not take.
  TomlValue value = parse_toml_text("value = " + toml_basic_string(text), place.file).at("value");
  // An inline table is a table wherever it goes ("stage.0.train={epochs=1}"); other texts wait
  // for the schema to say what they are.
  if (!text.empty() && text.front() == '{') {
    try {
      TomlValue parsed = parse_toml_text("value = " + text, place.file).at("value");
      if (parsed.is_table()) value = std::move(parsed);
    } catch (const std::exception&) {
    }
  }
  slot = std::move(value);
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
