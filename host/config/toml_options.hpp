// Validation of a config table against a component's ssld::Schema, and the host's
// implementation of ssld::Options over a validated table. Both read values through one
// conversion (read_option_value), so what validation accepts is exactly what a getter returns.
#pragma once

#include "config/diagnostics.hpp"
#include "config/toml_value.hpp"

#include <ssld/options.hpp>

#include <memory>
#include <string>
#include <vector>

namespace ssld::host {

// Checks every key of `table` against `schema`: unknown keys (with did-you-mean), wrong types,
// values outside `choices`, missing required keys, nested tables. `owner` names the component
// in messages ("student 'small_cnn'"); `reserved` are keys the host itself reads (type, weight).
void validate_options(const TomlValue& table, const Schema& schema, const std::string& owner,
                      const std::vector<std::string>& reserved, Diagnostics& diagnostics);

// Converts one TOML value to the declared type; on failure returns false and says why in
// `error`. Path values come back resolved against the folder of the file that set them.
bool read_option_value(const TomlValue& value, const OptionSpec& spec, OptionValue& out, std::string& error);

class TomlOptions : public Options {
 public:
  // `table` must have passed validate_options with the same schema.
  TomlOptions(TomlValue table, std::shared_ptr<const Schema> schema, std::string owner);

  bool has(const std::string& key) const override;
  bool get_bool(const std::string& key) const override;
  int64_t get_int(const std::string& key) const override;
  double get_float(const std::string& key) const override;
  std::string get_string(const std::string& key) const override;
  std::vector<int64_t> get_int_list(const std::string& key) const override;
  std::vector<double> get_float_list(const std::string& key) const override;
  std::vector<std::string> get_string_list(const std::string& key) const override;
  std::unique_ptr<Options> get_table(const std::string& key) const override;
  std::vector<std::unique_ptr<Options>> get_table_list(const std::string& key) const override;
  std::string where(const std::string& key) const override;

  const TomlValue& table() const { return table_; }
  const std::string& owner() const { return owner_; }

 private:
  const OptionSpec& spec(const std::string& key, std::initializer_list<OptionType> types) const;
  OptionValue value(const std::string& key, std::initializer_list<OptionType> types) const;

  TomlValue table_;
  std::shared_ptr<const Schema> schema_;
  std::string owner_;
};

}  // namespace ssld::host
