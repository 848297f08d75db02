// In-process host for tests that need real components: loads the built-in plugins (and the
// test plugins), and builds components and data pipelines from TOML text as `ssld` would.
#pragma once

#include "components/component_factory.hpp"
#include "config/config_loader.hpp"
#include "data/data_config.hpp"
#include "plugin/plugin_loader.hpp"
#include "stage/assembly.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

namespace ssld::test {

class PluginHost {
 public:
  PluginHost() {
    plugins_.load(SSLD_BUILTIN_PLUGIN_DIR);
    plugins_.load(std::string(SSLD_TEST_PLUGIN_ROOT) + "/stalling_dataset");
    plugins_.load(std::string(SSLD_TEST_PLUGIN_ROOT) + "/faulty_teacher");
    plugins_.load(std::string(SSLD_TEST_PLUGIN_ROOT) + "/entropy_sampler");
  }

  // The config text is written to a file in `dir` first, so relative paths and places work.
  host::TomlValue config(const std::string& text, const std::vector<std::string>& overrides = {}) {
    return host::load_config(dir_.write("config.toml", text), overrides);
  }

  // Builds data.<name>; fails the test (with every diagnostic) when it cannot.
  std::unique_ptr<host::DataPipeline> pipeline(const std::string& text, const std::string& name = "train",
                                               host::Sharding sharding = {}, uint64_t seed = 0) {
    const host::ComponentFactory factory(registry_, c10::Device(c10::kCPU), seed);
    host::Diagnostics diagnostics;
    auto built = host::build_pipeline(config(text), name, factory, sharding, diagnostics);
    std::string problems;
    for (const auto& item : diagnostics.items()) problems += item.place.str() + ": " + item.message + "\n";
    EXPECT_TRUE(diagnostics.empty()) << problems;
    return built;
  }

  // The problems building data.<name> reports, one string each.
  std::vector<std::string> pipeline_problems(const std::string& text, const std::string& name = "train") {
    const host::ComponentFactory factory(registry_, c10::Device(c10::kCPU), 0);
    host::Diagnostics diagnostics;
    host::build_pipeline(config(text), name, factory, {}, diagnostics);
    std::vector<std::string> problems;
    for (const auto& item : diagnostics.items()) problems.push_back(item.place.str() + ": " + item.message);
    return problems;
  }

  // The component a table body describes ("type = \"kl\"\ntemperature = 2").
  template <class Interface>
  std::unique_ptr<Interface> component(const std::string& table_body, uint64_t seed = 0) {
    const host::ComponentFactory factory(registry_, c10::Device(c10::kCPU), seed);
    const host::TomlValue root = config("[component]\n" + table_body);
    auto made = factory.create(kind_of<Interface>(), root.at("component"), "component");
    return std::unique_ptr<Interface>(static_cast<Interface*>(made.release()));
  }

  // Everything a stage's config describes, built as `ssld train` builds it; fails the test
  // (with every diagnostic) when it cannot.
  host::StageComponents stage(const std::string& text, uint64_t seed = 0) {
    const host::ComponentFactory factory(registry_, c10::Device(c10::kCPU), seed);
    host::Diagnostics diagnostics;
    host::StageComponents built = host::assemble_stage(config(text), factory, {}, diagnostics);
    std::string problems;
    for (const auto& item : diagnostics.items()) problems += item.place.str() + ": " + item.message + "\n";
    EXPECT_TRUE(diagnostics.empty()) << problems;
    return built;
  }

  const TempDir& dir() const { return dir_; }

 private:
  host::ComponentRegistry registry_;
  host::PluginLoader plugins_{registry_};
  TempDir dir_;
};

}  // namespace ssld::test
