#include "config/key_path.hpp"

#include "config/diagnostics.hpp"

#include <algorithm>
#include <sstream>

namespace ssld::host {

bool is_list_index(const std::string& part) {
  return !part.empty() && part.size() <= 9 && part.find_first_not_of("0123456789") == std::string::npos;
}

std::vector<std::string> split_key_path(const std::string& path, const SourcePlace& place, const std::string& prefix) {
  std::vector<std::string> parts;
  std::stringstream splitter(path);
  for (std::string part; std::getline(splitter, part, '.');) parts.push_back(part);
  if (parts.empty() || path.back() == '.' || std::find(parts.begin(), parts.end(), "") != parts.end())
    throw ConfigError(place, prefix + "malformed key path '" + path +
                                 "': write it as dotted names and list indices, e.g. student.width or loss.0.type");
  return parts;
}

TomlValue& value_at_key_path(TomlValue& root, const std::vector<std::string>& parts, const SourcePlace& place,
                             const KeyPathWalk& walk) {
  TomlValue* node = &root;
  std::string walked;
  bool list_entry = false;  // the last part indexed a list
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& part = parts[i];
    if (node->is_array()) {
      auto& list = node->as_array();
      if (!is_list_index(part) || std::stoul(part) >= list.size())
        throw ConfigError(place, walk.prefix + "'" + walked + "' is a list of " + std::to_string(list.size()) +
                                     " entries; '" + part + "' is not an index into it");
      node = &list[std::stoul(part)];
      list_entry = true;
    } else if (node->is_table()) {
      TomlTable& table = node->as_table();
      if (table.find(part) == table.end()) {
        if (i + 1 < parts.size() && is_list_index(parts[i + 1]))
          throw ConfigError(place, walk.prefix + "'" + (walked.empty() ? part : walked + "." + part) +
                                       "' is not a list in the config; a key path changes list entries but cannot "
                                       "create them");
        table[part] = TomlValue(TomlTable{});  // a table left to its defaults
      }
      node = &table[part];
      list_entry = false;
    } else {
      throw ConfigError(place, walk.prefix + "'" + walked + "' is not a table: '" + walked + "' is a " +
                                   toml_type_name(*node) + " value");
    }
    walked += (walked.empty() ? "" : ".") + part;
  }
  if (list_entry && !walk.allow_list_entry)
    throw ConfigError(place, walk.prefix + "the key path must name a key, not a list entry");
  return *node;
}

}  // namespace ssld::host
