#include "plugin/plugin_loader.hpp"

#include "core/errors.hpp"

#include <ssld/abi.h>
#include <ssld/fingerprint.hpp>

#define BOOST_DLL_USE_STD_FS
#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <sstream>

namespace ssld::host {
namespace fs = std::filesystem;

namespace {

// Never destroyed: a library must stay mapped as long as anything it made may live, and at
// process exit static destructors run in an order we do not control.
std::vector<boost::dll::shared_library>& loaded_libraries() {
  static auto* libraries = new std::vector<boost::dll::shared_library>();
  return *libraries;
}

std::string bounded(const char* text, std::size_t size) { return std::string(text, strnlen(text, size)); }

std::string abi(int major, int minor) { return std::to_string(major) + "." + std::to_string(minor); }

// Boost.DLL wraps dlerror() in its own prose; users need only the loader's words.
std::string loader_reason(const std::exception& error) {
  const std::string text = error.what();
  const std::string marker = "(dlerror system message: ";
  const auto start = text.find(marker);
  if (start == std::string::npos) return text;
  const auto end = text.rfind(')');
  return text.substr(start + marker.size(), end > start ? end - start - marker.size() : std::string::npos);
}

}  // namespace

fs::path builtin_plugin_folder() {
  std::error_code error;
  const fs::path program = boost::dll::program_location(error);
  if (error) return {};
  return program.parent_path().parent_path() / "lib" / "ssld" / "plugins";
}

std::vector<fs::path> plugin_search_path(const std::vector<std::string>& config_paths) {
  std::vector<fs::path> paths;
  if (const fs::path builtin = builtin_plugin_folder(); !builtin.empty() && fs::is_directory(builtin))
    paths.push_back(builtin);
  if (const char* env = std::getenv("SSLD_PLUGIN_PATH")) {
    std::stringstream entries(env);
    for (std::string entry; std::getline(entries, entry, ':');)
      if (!entry.empty()) paths.emplace_back(entry);
  }
  for (const auto& entry : config_paths) paths.emplace_back(entry);
  return paths;
}

void PluginLoader::load(const fs::path& file_or_folder) {
  std::error_code error;
  if (fs::is_directory(file_or_folder, error)) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::directory_iterator(file_or_folder, error))
      if (entry.path().extension() == ".so" && !fs::is_directory(entry.path())) files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (const auto& file : files) load_file(file);
  } else if (fs::exists(file_or_folder, error)) {
    load_file(file_or_folder);
  } else {
    throw PluginError("plugin path '" + file_or_folder.string() +
                      "' does not exist (from SSLD_PLUGIN_PATH or [plugins] paths): fix or remove the entry");
  }
}

void PluginLoader::load_file(const fs::path& path) {
  const fs::path file = fs::weakly_canonical(fs::absolute(path));
  if (!loaded_.insert(file).second) return;
  const std::string where = file.string();

  boost::dll::shared_library library;
  try {
    library.load(file, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
  } catch (const std::exception& error) {
    throw PluginError("cannot load plugin " + where + ": " + loader_reason(error) +
                      ". A plugin is a shared library built with ssld_add_plugin() for this machine.");
  }
  if (!library.has(SSLD_PLUGIN_INFO_SYMBOL))
    throw PluginError(where + " is not an ssld plugin: it does not export " SSLD_PLUGIN_INFO_SYMBOL
                      ". Define the plugin with SSLD_PLUGIN(...) from <ssld/plugin.hpp> and build it "
                      "with ssld_add_plugin().");
  const ssld_plugin_info* info = library.get<const ssld_plugin_info*()>(SSLD_PLUGIN_INFO_SYMBOL)();
  if (info == nullptr || info->struct_size < offsetof(ssld_plugin_info, fingerprint) + sizeof(ssld_build_fingerprint))
    throw PluginError(where + " returned a malformed handshake (struct size " +
                      std::to_string(info ? info->struct_size : 0) + ", expected " +
                      std::to_string(sizeof(ssld_plugin_info)) + "): it was not built with the ssld SDK.");

  auto record = std::make_unique<PluginRecord>();
  record->file = where;
  record->name = bounded(info->name, sizeof(info->name));
  record->version = bounded(info->version, sizeof(info->version));
  record->abi_major = info->abi_major;
  record->abi_minor = info->abi_minor;
  const std::string plugin = "plugin '" + record->name + "' " + record->version + " (" + where + ")";

  if (info->abi_major != SSLD_ABI_MAJOR)
    throw PluginError(plugin + " was built for ssld SDK ABI " + abi(info->abi_major, info->abi_minor) +
                      ", but this ssld speaks ABI " + abi(SSLD_ABI_MAJOR, SSLD_ABI_MINOR) +
                      ": major versions must match. Rebuild the plugin against this ssld's SDK.");
  if (info->abi_minor > SSLD_ABI_MINOR)
    throw PluginError(plugin + " was built against a newer ssld SDK (ABI " + abi(info->abi_major, info->abi_minor) +
                      ") than this ssld supports (ABI " + abi(SSLD_ABI_MAJOR, SSLD_ABI_MINOR) +
                      "). Update ssld, or rebuild the plugin against this ssld's SDK.");
  const ssld_build_fingerprint host_build = this_build_fingerprint();
  if (!(info->fingerprint == host_build))
    throw PluginError(plugin + " was built with " + describe(info->fingerprint) + ", but this ssld was built with " +
                      describe(host_build) + ". C++ objects cross the plugin boundary, so both must use the "
                      "same libtorch and compiler: rebuild the plugin against this installation.");
  if (!library.has(SSLD_PLUGIN_REGISTER_SYMBOL))
    throw PluginError(plugin + " passes the handshake but does not export " SSLD_PLUGIN_REGISTER_SYMBOL
                      "; define it with SSLD_PLUGIN(...) from <ssld/plugin.hpp>.");

  auto register_components = library.get<int32_t(void*, char*, uint32_t)>(SSLD_PLUGIN_REGISTER_SYMBOL);
  loaded_libraries().push_back(library);  // from here on the plugin's code may be referenced
  const PluginRecord* registered = plugins_.emplace_back(std::move(record)).get();
  registry_.begin_plugin(registered);
  char message[2048] = {0};
  const int32_t status = register_components(static_cast<Registry*>(&registry_), message, sizeof(message));
  registry_.begin_plugin(nullptr);
  std::vector<std::string> problems = registry_.take_problems();
  if (status != 0)
    problems.insert(problems.begin(), plugin + " failed while registering its components: " +
                                          (message[0] ? std::string(message) : std::string("(no message)")));
  if (!problems.empty()) {
    std::string text = problems.front();
    for (std::size_t i = 1; i < problems.size(); ++i) text += "\n" + problems[i];
    throw PluginError(text);
  }
  spdlog::debug("loaded {} (ABI {})", plugin, abi(registered->abi_major, registered->abi_minor));
}

}  // namespace ssld::host
