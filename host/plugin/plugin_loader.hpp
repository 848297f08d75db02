// Finds and loads plugin libraries: checks each one's frozen C handshake (abi.h) before any
// C++ object crosses, then lets it register its components. Libraries are loaded
// RTLD_NOW | RTLD_LOCAL on the calling (main) thread and are never unloaded, so no component
// can outlive its code.
#pragma once

#include "plugin/component_registry.hpp"

#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace ssld::host {

// The folders and files to load, in order: the built-in plugin folder next to the program
// (<prefix>/lib/ssld/plugins for <prefix>/bin/ssld), then SSLD_PLUGIN_PATH (':'-separated),
// then the config's [plugins] paths.
std::vector<std::filesystem::path> plugin_search_path(const std::vector<std::string>& config_paths);

// <prefix>/lib/ssld/plugins, found from the running executable's own location.
std::filesystem::path builtin_plugin_folder();

class PluginLoader {
 public:
  explicit PluginLoader(ComponentRegistry& registry) : registry_(registry) {}

  // Loads one library, or every *.so in a folder (sorted by name). Throws PluginError naming
  // the file; a path already loaded (by its canonical name) is skipped.
  void load(const std::filesystem::path& file_or_folder);

  // Loads every entry of plugin_search_path(config_paths).
  void load_search_path(const std::vector<std::string>& config_paths) {
    for (const auto& entry : plugin_search_path(config_paths)) load(entry);
  }

  const std::vector<std::unique_ptr<PluginRecord>>& plugins() const { return plugins_; }

 private:
  void load_file(const std::filesystem::path& file);

  ComponentRegistry& registry_;
  std::vector<std::unique_ptr<PluginRecord>> plugins_;
  std::set<std::filesystem::path> loaded_;
};

}  // namespace ssld::host
