// `ssld check CONFIG`: loads the config (with its bases and --set overrides), loads the
// plugins, validates every table and instantiates every component, then reports every
// problem it found at once.
#include "cli/commands.hpp"
#include "cli/command_setup.hpp"
#include "data/data_config.hpp"

#include <ssld/loss.hpp>

#include <iostream>

namespace ssld::host {

int run_check(const CheckCommand& command) {
  Diagnostics diagnostics;
  const auto setup = set_up_command(command.config, command.overrides, diagnostics);
  const TomlValue& root = setup->root;
  const ComponentFactory& factory = *setup->factory;

  std::vector<std::string> summary;
  bool has_teacher = false;
  std::vector<std::pair<const Loss*, SourcePlace>> losses;
  std::vector<std::unique_ptr<Component>> components;
  for (const auto& slot : component_slots()) {
    if (!root.contains(slot.key)) continue;
    const TomlValue& value = root.at(slot.key);
    std::vector<TomlValue> tables;
    if (slot.list && value.is_array()) {
      tables = value.as_array();
    } else if (slot.list) {
      diagnostics.add(SourcePlace::of(value), "'" + slot.key + "' is a list of tables: write [[" + slot.key + "]]");
      continue;
    } else {
      tables.push_back(value);
    }
    for (std::size_t i = 0; i < tables.size(); ++i) {
      const std::string label = slot.list ? slot.key + "[" + std::to_string(i) + "]" : slot.key;
      auto component = factory.create(slot.kind, tables[i], label, slot.host_schema, diagnostics);
      if (!component) continue;
      summary.push_back(label + " = " + tables[i].at("type").as_string().str);
      if (slot.kind == Kind::Teacher) has_teacher = true;
      if (slot.kind == Kind::Loss) losses.emplace_back(static_cast<const Loss*>(component.get()), SourcePlace::of(tables[i]));
      components.push_back(std::move(component));
    }
  }
  std::vector<std::unique_ptr<DataPipeline>> pipelines;
  for (const std::string name : {"train", "val"}) {
    auto pipeline = build_pipeline(root, name, factory, Sharding{}, diagnostics);
    if (!pipeline) continue;
    int64_t samples = 0;
    for (const auto& source : pipeline->sources) samples += source->size();
    summary.push_back("data." + name + ": " + std::to_string(pipeline->sources.size()) + " source(s), " +
                      std::to_string(samples) + " samples, " + std::to_string(pipeline->sampler->steps_per_epoch()) +
                      " steps of " + std::to_string(pipeline->batch_size) + " per epoch");
    pipelines.push_back(std::move(pipeline));
  }
  for (const auto& [loss, place] : losses)
    if (loss->needs_teacher() && !has_teacher)
      diagnostics.add(place, "this loss learns from a teacher, but the config has no [teacher] table");
  diagnostics.throw_if_any();

  std::cout << command.config << ": OK (device " << setup->device.str() << ", seed " << setup->run.seed << ")\n";
  for (const auto& line : summary) std::cout << "  " << line << "\n";
  return 0;
}

}  // namespace ssld::host
