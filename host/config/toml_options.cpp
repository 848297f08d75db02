#include "config/toml_options.hpp"

#include "config/config_loader.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>

namespace ssld::host {
namespace fs = std::filesystem;

namespace {

// A relative path is relative to the folder of the config file that wrote it; a path from
// --set or a default is relative to the working directory, as a shell user expects.
std::string resolve_path(const TomlValue& value) {
  const std::string text = value.as_string().str;
  const SourcePlace place = SourcePlace::of(value);
  if (text.empty() || fs::path(text).is_absolute() || place.line <= 0) return text;
  return (fs::path(place.file).parent_path() / text).lexically_normal().string();
}

std::string a_or_an(const std::string& noun) {
  return (noun.find_first_of("aeiou") == 0 ? "an " : "a ") + noun;
}

std::string quoted_preview(const TomlValue& value) {
  if (value.is_string()) return " \"" + value.as_string().str + "\"";
  if (value.is_table() || value.is_array()) return "";
  return " " + toml::format(value);
}

template <class Element, class Read>
bool read_list(const TomlValue& value, const char* element_name, Read read, std::vector<Element>& out,
               std::string& error) {
  if (!value.is_array()) return false;
  for (const auto& item : value.as_array()) {
    Element element;
    if (!read(item, element)) {
      error = "every entry must be a " + std::string(element_name) + ", found " + toml_type_name(item) +
              quoted_preview(item);
      return false;
    }
    out.push_back(std::move(element));
  }
  return true;
}

// Every float option is finite: nan and inf (TOML allows both) would train silently wrong.
bool read_float(const TomlValue& v, double& out) {
  if (v.is_floating()) out = v.as_floating();
  else if (v.is_integer()) out = static_cast<double>(v.as_integer());
  else return false;
  return std::isfinite(out);
}

}  // namespace

bool read_option_value(const TomlValue& raw, const OptionSpec& spec, OptionValue& out, std::string& error) {
  const bool wants_text = spec.type == OptionType::String || spec.type == OptionType::Path;
  TomlValue value = raw;
  if (is_override_text(raw) && !wants_text && !parse_override_text(raw, value)) {
    error = "'" + raw.as_string().str + "' is not " + a_or_an(to_string(spec.type));
    return false;
  }
  bool ok = false;
  switch (spec.type) {
    case OptionType::Bool:
      if ((ok = value.is_boolean())) out = value.as_boolean();
      break;
    case OptionType::Int:
      // toml11 saturates an integer beyond 64 bits to the extreme values: refuse both.
      if ((ok = value.is_integer() && value.as_integer() != std::numeric_limits<int64_t>::max() &&
                value.as_integer() != std::numeric_limits<int64_t>::min()))
        out = static_cast<int64_t>(value.as_integer());
      else if (value.is_integer())
        error = "must lie strictly between -2^63 and 2^63 - 1 (a larger integer saturates)";
      break;
    case OptionType::Float: {
      double number = 0;
      if ((ok = read_float(value, number))) out = number;
      else if (value.is_floating()) error = "must be a finite number, found " + toml::format(value);
      break;
    }
    case OptionType::String:
      if ((ok = value.is_string())) out = value.as_string().str;
      break;
    case OptionType::Path:
      if ((ok = value.is_string())) out = resolve_path(value);
      break;
    case OptionType::IntList: {
      std::vector<int64_t> list;
      auto read = [](const TomlValue& v, int64_t& e) { return v.is_integer() && ((e = v.as_integer()), true); };
      if ((ok = read_list(value, "integer", read, list, error))) out = std::move(list);
      break;
    }
    case OptionType::FloatList: {
      std::vector<double> list;
      if ((ok = read_list(value, "number", read_float, list, error))) out = std::move(list);
      break;
    }
    case OptionType::StringList:
    case OptionType::PathList: {
      std::vector<std::string> list;
      const bool paths = spec.type == OptionType::PathList;
      auto read = [paths](const TomlValue& v, std::string& e) {
        if (!v.is_string()) return false;
        e = paths ? resolve_path(v) : v.as_string().str;
        return true;
      };
      if ((ok = read_list(value, "string", read, list, error))) out = std::move(list);
      break;
    }
    case OptionType::Table:
      ok = value.is_table();
      break;
    case OptionType::TableList:
      ok = value.is_array() && std::all_of(value.as_array().begin(), value.as_array().end(),
                                           [](const TomlValue& v) { return v.is_table(); });
      break;
  }
  if (!ok && error.empty())
    error = "must be " + a_or_an(to_string(spec.type)) + ", found " + toml_type_name(value) + quoted_preview(value);
  if (ok && !spec.choices.empty()) {
    const std::string& chosen = std::get<std::string>(out);
    if (std::find(spec.choices.begin(), spec.choices.end(), chosen) == spec.choices.end()) {
      std::string allowed;
      for (const auto& choice : spec.choices) allowed += (allowed.empty() ? "" : ", ") + choice;
      error = "'" + chosen + "' is not one of: " + allowed + did_you_mean(chosen, spec.choices);
      return false;
    }
  }
  return ok;
}

void validate_options(const TomlValue& table, const Schema& schema, const std::string& owner,
                      const std::vector<std::string>& reserved, Diagnostics& diagnostics) {
  if (!table.is_table()) {
    diagnostics.add(SourcePlace::of(table), owner + " must be a table, found " + toml_type_name(table));
    return;
  }
  std::vector<std::string> known = reserved;
  for (const auto& spec : schema.options()) known.push_back(spec.name);

  for (const auto& [key, value] : table.as_table()) {
    if (std::find(reserved.begin(), reserved.end(), key) != reserved.end()) continue;
    const OptionSpec* spec = schema.find(key);
    if (spec == nullptr) {
      std::string message = "unknown option '" + key + "' for " + owner + did_you_mean(key, known);
      if (message.back() != '?') {
        std::string listed;
        for (const auto& name : known) listed += (listed.empty() ? "" : ", ") + name;
        message += " (its options: " + (listed.empty() ? std::string("none") : listed) + ")";
      }
      diagnostics.add(SourcePlace::of(value), message);
      continue;
    }
    OptionValue converted;
    std::string error;
    if (!read_option_value(value, *spec, converted, error)) {
      diagnostics.add(SourcePlace::of(value), "option '" + key + "' of " + owner + ": " + error);
      continue;
    }
    if (spec->nested && spec->type == OptionType::Table) {
      validate_options(value, *spec->nested, owner + " (" + key + ")", {}, diagnostics);
    } else if (spec->nested && spec->type == OptionType::TableList) {
      const auto& entries = value.as_array();
      for (std::size_t i = 0; i < entries.size(); ++i)
        validate_options(entries[i], *spec->nested, owner + " (" + key + "[" + std::to_string(i) + "])", {},
                         diagnostics);
    }
  }
  for (const auto& spec : schema.options()) {
    if (spec.required && !table.contains(spec.name))
      diagnostics.add(SourcePlace::of(table), owner + " needs option '" + spec.name + "' (" + to_string(spec.type) +
                                                  "): " + spec.doc);
  }
}

TomlOptions::TomlOptions(TomlValue table, std::shared_ptr<const Schema> schema, std::string owner)
    : table_(std::move(table)), schema_(std::move(schema)), owner_(std::move(owner)) {
  // Not a table ("[[stage]] train = 5"): validation reports it; the getters see the defaults.
  if (!table_.is_table()) table_ = TomlValue(TomlTable{});
}

const OptionSpec& TomlOptions::spec(const std::string& key, std::initializer_list<OptionType> types) const {
  const OptionSpec* found = schema_->find(key);
  if (found == nullptr)
    throw Error("plugin bug: " + owner_ + " reads option '" + key + "' that its schema does not declare");
  if (std::find(types.begin(), types.end(), found->type) == types.end())
    throw Error("plugin bug: " + owner_ + " reads option '" + key + "' declared as " + to_string(found->type) +
                " with a getter of another type");
  return *found;
}

OptionValue TomlOptions::value(const std::string& key, std::initializer_list<OptionType> types) const {
  const OptionSpec& declared = spec(key, types);
  if (table_.contains(key)) {
    OptionValue out;
    std::string error;
    if (!read_option_value(table_.at(key), declared, out, error))
      throw Error(where(key) + ": option '" + key + "' of " + owner_ + ": " + error);
    return out;
  }
  if (declared.default_value) return *declared.default_value;
  throw Error("plugin bug: " + owner_ + " reads option '" + key + "', which is not set and has no default (check has())");
}

bool TomlOptions::has(const std::string& key) const {
  const OptionSpec* found = schema_->find(key);
  return table_.contains(key) || (found != nullptr && found->default_value.has_value());
}
bool TomlOptions::get_bool(const std::string& key) const { return std::get<bool>(value(key, {OptionType::Bool})); }
int64_t TomlOptions::get_int(const std::string& key) const { return std::get<int64_t>(value(key, {OptionType::Int})); }
double TomlOptions::get_float(const std::string& key) const {
  return std::get<double>(value(key, {OptionType::Float}));
}
std::string TomlOptions::get_string(const std::string& key) const {
  return std::get<std::string>(value(key, {OptionType::String, OptionType::Path}));
}
std::vector<int64_t> TomlOptions::get_int_list(const std::string& key) const {
  return std::get<std::vector<int64_t>>(value(key, {OptionType::IntList}));
}
std::vector<double> TomlOptions::get_float_list(const std::string& key) const {
  return std::get<std::vector<double>>(value(key, {OptionType::FloatList}));
}
std::vector<std::string> TomlOptions::get_string_list(const std::string& key) const {
  return std::get<std::vector<std::string>>(value(key, {OptionType::StringList, OptionType::PathList}));
}

std::unique_ptr<Options> TomlOptions::get_table(const std::string& key) const {
  const OptionSpec& declared = spec(key, {OptionType::Table});
  auto nested = declared.nested ? declared.nested : std::make_shared<const Schema>();
  const TomlValue table = table_.contains(key) ? table_.at(key) : TomlValue(TomlTable{});
  return std::make_unique<TomlOptions>(table, nested, owner_ + " (" + key + ")");
}

std::vector<std::unique_ptr<Options>> TomlOptions::get_table_list(const std::string& key) const {
  const OptionSpec& declared = spec(key, {OptionType::TableList});
  auto nested = declared.nested ? declared.nested : std::make_shared<const Schema>();
  std::vector<std::unique_ptr<Options>> tables;
  if (!table_.contains(key)) return tables;
  const auto& entries = table_.at(key).as_array();
  for (std::size_t i = 0; i < entries.size(); ++i)
    tables.push_back(std::make_unique<TomlOptions>(entries[i], nested, owner_ + " (" + key + "[" + std::to_string(i) + "])"));
  return tables;
}

std::string TomlOptions::where(const std::string& key) const {
  const SourcePlace place = table_.contains(key) ? SourcePlace::of(table_.at(key)) : SourcePlace::of(table_);
  return place.str() + " (" + owner_ + ", option '" + key + "')";
}

}  // namespace ssld::host
