// One table per host settings group ([train], [dist], [teacher_cache], ...): each row gives a
// key's name, its field in the settings struct and its doc, and the struct's own member
// initializers are the defaults. The group's Schema (what `ssld check` validates and `ssld
// plugins` documents), its defaults and its reader all come from that one table, so they cannot
// disagree. Enumerations are read once into enums, with their spellings listed beside them.
//
//   static const SettingsTable<DistSettings> table = SettingsTable<DistSettings>()
//       .add("timeout_s", &DistSettings::timeout_s, "seconds a collective may wait");
//   DistSettings settings = table.read(options);
#pragma once

#include <ssld/error.hpp>
#include <ssld/options.hpp>

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace ssld::host {

// An enumeration's spellings in configs, logs and keys.
template <class E>
class EnumNames {
 public:
  EnumNames(std::initializer_list<std::pair<E, const char*>> names) : names_(names) {}
  const char* name(E value) const {
    for (const auto& [entry, text] : names_)
      if (entry == value) return text;
    return "?";
  }
  std::vector<std::string> spellings() const {
    std::vector<std::string> out;
    for (const auto& [entry, text] : names_) out.emplace_back(text);
    return out;
  }
  E parse(const std::string& text, const std::string& key) const {  // a validated value
    for (const auto& [entry, spelling] : names_)
      if (text == spelling) return entry;
    throw Error(key + " is '" + text + "', not one of its choices");  // the schema lists them
  }

 private:
  std::vector<std::pair<E, const char*>> names_;
};

template <class S>
class SettingsTable {
 public:
  SettingsTable& add(const char* key, bool S::*field, const char* doc) {
    schema_.add_bool(key, defaults_.*field, doc);
    return reader([=](const Options& o, S& s) { s.*field = o.get_bool(key); });
  }
  SettingsTable& add(const char* key, int64_t S::*field, const char* doc) {
    schema_.add_int(key, defaults_.*field, doc);
    return reader([=](const Options& o, S& s) { s.*field = o.get_int(key); });
  }
  SettingsTable& add(const char* key, double S::*field, const char* doc) {
    schema_.add_float(key, defaults_.*field, doc);
    return reader([=](const Options& o, S& s) { s.*field = o.get_float(key); });
  }
  // `choices`: the allowed values when another module parses the text (not empty).
  SettingsTable& add(const char* key, std::string S::*field, const char* doc, std::vector<std::string> choices = {}) {
    schema_.add_string(key, defaults_.*field, doc, std::move(choices));
    return reader([=](const Options& o, S& s) { s.*field = o.get_string(key); });
  }
  // A path: relative values resolve against the folder of the config file that set them.
  SettingsTable& add_path(const char* key, std::string S::*field, const char* doc) {
    schema_.add_path(key, defaults_.*field, doc);
    return reader([=](const Options& o, S& s) { s.*field = o.get_string(key); });
  }
  SettingsTable& add(const char* key, std::vector<int64_t> S::*field, const char* doc) {
    schema_.add_int_list(key, defaults_.*field, doc);
    return reader([=](const Options& o, S& s) { s.*field = o.get_int_list(key); });
  }
  SettingsTable& add(const char* key, std::vector<double> S::*field, const char* doc) {
    schema_.add_float_list(key, defaults_.*field, doc);
    return reader([=](const Options& o, S& s) { s.*field = o.get_float_list(key); });
  }
  template <class E>
  SettingsTable& add(const char* key, E S::*field, const EnumNames<E>& names, const char* doc) {
    schema_.add_string(key, names.name(defaults_.*field), doc, names.spellings());
    return reader([=](const Options& o, S& s) { s.*field = names.parse(o.get_string(key), key); });
  }

  // A key the group's reader reads by hand (a nested table): in the schema only.
  SettingsTable& add_table(const char* key, Schema nested, const char* doc) {
    schema_.add_table(key, std::move(nested), doc);
    return *this;
  }

  const Schema& schema() const { return schema_; }
  // The settings of a table validated against schema(): the defaults where a key is absent.
  S read(const Options& options) const {
    S settings;
    for (const auto& read_field : readers_) read_field(options, settings);
    return settings;
  }

 private:
  SettingsTable& reader(std::function<void(const Options&, S&)> read_field) {
    readers_.push_back(std::move(read_field));
    return *this;
  }
  S defaults_{};
  Schema schema_;
  std::vector<std::function<void(const Options&, S&)>> readers_;
};

}  // namespace ssld::host
