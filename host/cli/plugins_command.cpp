// `ssld plugins`: every loaded component with its plugin and options. The options
// documentation users read comes from here, i.e. from the schemas in the code.
#include "cli/commands.hpp"
#include "config/config_loader.hpp"
#include "stage/config_schema.hpp"
#include "plugin/plugin_loader.hpp"

#include <nlohmann/json.hpp>

#include <iomanip>
#include <iostream>
#include <sstream>

namespace ssld::host {

namespace {

nlohmann::json to_json(const OptionValue& value) {
  return std::visit([](const auto& v) { return nlohmann::json(v); }, value);
}

std::string to_text(const OptionValue& value) {
  const nlohmann::json json = to_json(value);
  return json.dump();
}

nlohmann::json schema_json(const Schema& schema) {
  nlohmann::json options = nlohmann::json::array();
  for (const auto& spec : schema.options()) {
    nlohmann::json option = {{"name", spec.name}, {"type", to_string(spec.type)}, {"doc", spec.doc},
                             {"required", spec.required}};
    if (spec.default_value) option["default"] = to_json(*spec.default_value);
    if (!spec.choices.empty()) option["choices"] = spec.choices;
    if (spec.nested) option["options"] = schema_json(*spec.nested);
    options.push_back(option);
  }
  return options;
}

void print_schema(std::ostream& out, const Schema& schema, const std::string& indent) {
  for (const auto& spec : schema.options()) {
    std::string value = spec.required ? "required" : spec.default_value ? "= " + to_text(*spec.default_value) : "optional";
    // Columns of 20, 12 and 18: a cell too wide for its column ends the line and the rest goes
    // on below at its own column, so every doc starts at the same place.
    std::string line = indent;
    size_t column = 0;
    auto cell = [&](const std::string& text, size_t width) {
      column += width;
      if (text.size() < width) {
        line += text + std::string(width - text.size(), ' ');
        return;
      }
      out << line << text << "\n";
      line = indent + std::string(column, ' ');
    };
    cell(spec.name, 20);
    cell(to_string(spec.type), 12);
    cell(value, 18);
    out << line << spec.doc;
    if (!spec.choices.empty()) {
      out << " (one of:";
      for (const auto& choice : spec.choices) out << " " << choice;
      out << ")";
    }
    out << "\n";
    if (spec.nested) print_schema(out, *spec.nested, indent + "  ");
  }
}

}  // namespace

int run_plugins(const PluginsCommand& command) {
  std::vector<std::string> config_paths;
  if (!command.config.empty()) config_paths = config_plugin_paths(load_config(command.config));
  ComponentRegistry registry;
  PluginLoader loader(registry);
  loader.load_search_path(config_paths);

  if (command.json) {
    nlohmann::json plugins = nlohmann::json::array();
    for (const auto& plugin : loader.plugins())
      plugins.push_back({{"name", plugin->name}, {"version", plugin->version}, {"file", plugin->file},
                         {"abi", std::to_string(plugin->abi_major) + "." + std::to_string(plugin->abi_minor)}});
    nlohmann::json components = nlohmann::json::array();
    for (const auto* component : registry.all())
      components.push_back({{"kind", to_string(component->info.kind)},
                            {"name", component->info.name},
                            {"doc", component->info.doc},
                            {"plugin", component->plugin ? component->plugin->name : ""},
                            {"plugin_version", component->plugin ? component->plugin->version : ""},
                            {"file", component->plugin ? component->plugin->file : ""},
                            {"options", schema_json(*component->schema)}});
    std::cout << nlohmann::json{{"plugins", plugins}, {"components", components}}.dump(2) << "\n";
    return 0;
  }

  std::cout << loader.plugins().size() << " plugin librar" << (loader.plugins().size() == 1 ? "y" : "ies")
            << ", " << registry.all().size() << " components\n";
  for (const auto* component : registry.all()) {
    std::cout << "\n" << to_string(component->info.kind) << " " << component->info.name;
    if (component->plugin)
      std::cout << "  [" << component->plugin->name << " " << component->plugin->version << ", "
                << component->plugin->file << "]";
    std::cout << "\n  " << component->info.doc << "\n";
    print_schema(std::cout, *component->schema, "    ");
  }
  return 0;
}

}  // namespace ssld::host
