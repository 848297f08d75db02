// A component's options: the schema it declares (name, type, default, doc, required) and the
// host-implemented reader it receives. The host validates a config table against the schema
// before the factory runs, so a factory only reads keys that exist with the declared type.
#pragma once

#include <ssld/error.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace ssld {

// Frozen order: values cross the ABI. Append only (a minor bump).
enum class OptionType : int32_t {
  Bool,
  Int,
  Float,  // accepts TOML integers too
  String,
  Path,  // a string; relative paths resolve against the folder of the config file that set it
  IntList,
  FloatList,
  StringList,
  Table,      // a sub-table, validated against a nested schema when one is given; without one
              // it is a component table that the plugin builds with ssld::create (an ensemble)
  TableList,  // an array of tables, each validated against the nested schema
  PathList,   // strings, each resolved like Path
};


using OptionValue = std::variant<bool, int64_t, double, std::string, std::vector<int64_t>,
                                 std::vector<double>, std::vector<std::string>>;

class Schema;

struct OptionSpec {
  std::string name;
  OptionType type = OptionType::String;
  std::string doc;
  bool required = false;
  std::optional<OptionValue> default_value;  // absent and not required: the key may be missing
  std::vector<std::string> choices;          // String only: the allowed values, when not empty
  std::shared_ptr<const Schema> nested;      // Table / TableList: schema of the sub-table(s)
};

// Built fluently in a plugin's registration:
//   Schema().add_int("width", 32, "channels of the first block")
//           .add_string("precision", "fp32", "teacher precision", {"fp32", "bf16", "fp16"})
//           .require(OptionType::Path, "weights", "weights file written by ssld")
class Schema {
 public:
  Schema& add_bool(std::string name, bool value, std::string doc) {
    return add(std::move(name), OptionType::Bool, std::move(doc), value);
  }
  Schema& add_int(std::string name, int64_t value, std::string doc) {
    return add(std::move(name), OptionType::Int, std::move(doc), value);
  }
  Schema& add_float(std::string name, double value, std::string doc) {
    return add(std::move(name), OptionType::Float, std::move(doc), value);
  }
  Schema& add_string(std::string name, std::string value, std::string doc,
                     std::vector<std::string> choices = {}) {
    add(std::move(name), OptionType::String, std::move(doc), std::move(value));
    specs_.back().choices = std::move(choices);
    return *this;
  }
  Schema& add_path(std::string name, std::string value, std::string doc) {
    return add(std::move(name), OptionType::Path, std::move(doc), std::move(value));
  }
  Schema& add_int_list(std::string name, std::vector<int64_t> value, std::string doc) {
    return add(std::move(name), OptionType::IntList, std::move(doc), std::move(value));
  }
  Schema& add_float_list(std::string name, std::vector<double> value, std::string doc) {
    return add(std::move(name), OptionType::FloatList, std::move(doc), std::move(value));
  }
  Schema& add_path_list(std::string name, std::vector<std::string> value, std::string doc) {
    return add(std::move(name), OptionType::PathList, std::move(doc), std::move(value));
  }
  Schema& add_string_list(std::string name, std::vector<std::string> value, std::string doc) {
    return add(std::move(name), OptionType::StringList, std::move(doc), std::move(value));
  }
  // A key that must be present; it has no default.
  Schema& require(OptionType type, std::string name, std::string doc) {
    specs_.push_back(OptionSpec{std::move(name), type, std::move(doc), true, std::nullopt, {}, nullptr});
    return *this;
  }
  // A key that may be absent (Options::has tells); it has no default.
  Schema& optional(OptionType type, std::string name, std::string doc) {
    specs_.push_back(OptionSpec{std::move(name), type, std::move(doc), false, std::nullopt, {}, nullptr});
    return *this;
  }
  // A sub-table (or array of tables) checked against `nested`; optional unless `required`.
  Schema& add_table(std::string name, Schema nested, std::string doc, bool required = false) {
    return add_nested(OptionType::Table, std::move(name), std::move(nested), std::move(doc), required);
  }
  Schema& add_table_list(std::string name, Schema nested, std::string doc, bool required = false) {
    return add_nested(OptionType::TableList, std::move(name), std::move(nested), std::move(doc), required);
  }

  // Any spec, e.g. one copied from another schema.
  Schema& add_spec(OptionSpec spec) {
    specs_.push_back(std::move(spec));
    return *this;
  }

  const std::vector<OptionSpec>& options() const { return specs_; }
  const OptionSpec* find(const std::string& name) const {
    for (const auto& spec : specs_)
      if (spec.name == name) return &spec;
    return nullptr;
  }

 private:
  Schema& add(std::string name, OptionType type, std::string doc, OptionValue value) {
    specs_.push_back(OptionSpec{std::move(name), type, std::move(doc), false, std::move(value), {}, nullptr});
    return *this;
  }
  Schema& add_nested(OptionType type, std::string name, Schema nested, std::string doc, bool required) {
    specs_.push_back(OptionSpec{std::move(name), type, std::move(doc), required, std::nullopt, {},
                                std::make_shared<const Schema>(std::move(nested))});
    return *this;
  }

  std::vector<OptionSpec> specs_;
};

// Read access to one validated component table. Implemented by the host. Getters throw
// ssld::Error for a key the schema does not declare or of another type: a plugin bug, not a
// user's. Keys with a default always read; keys without one read only when has() says so.
class Options {
 public:
  virtual ~Options() = default;

  virtual bool has(const std::string& key) const = 0;
  virtual bool get_bool(const std::string& key) const = 0;
  virtual int64_t get_int(const std::string& key) const = 0;
  virtual double get_float(const std::string& key) const = 0;
  virtual std::string get_string(const std::string& key) const = 0;  // String and Path
  virtual std::vector<int64_t> get_int_list(const std::string& key) const = 0;
  virtual std::vector<double> get_float_list(const std::string& key) const = 0;
  virtual std::vector<std::string> get_string_list(const std::string& key) const = 0;  // and PathList
  virtual std::unique_ptr<Options> get_table(const std::string& key) const = 0;
  virtual std::vector<std::unique_ptr<Options>> get_table_list(const std::string& key) const = 0;

  // "configs/demo.toml:12:9 (student.width)": where a key was set, for the plugin's own
  // error messages. Falls back to the table's location for a defaulted key.
  virtual std::string where(const std::string& key) const = 0;
};

// The error a plugin throws for an option value its schema cannot express as invalid
// (a negative width, a file that does not exist): names the place in the config.
inline Error option_error(const Options& options, const std::string& key, const std::string& message) {
  return Error(options.where(key) + ": " + message);
}

inline const char* to_string(OptionType type) {
  switch (type) {
    case OptionType::Bool: return "bool";
    case OptionType::Int: return "int";
    case OptionType::Float: return "float";
    case OptionType::String: return "string";
    case OptionType::Path: return "path";
    case OptionType::IntList: return "int list";
    case OptionType::FloatList: return "float list";
    case OptionType::StringList: return "string list";
    case OptionType::Table: return "table";
    case OptionType::TableList: return "table list";
    case OptionType::PathList: return "path list";
  }
  return "unknown";
}

}  // namespace ssld
