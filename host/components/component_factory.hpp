// Builds components from config tables: looks up `type` in the registry, validates the table
// against the component's schema, then calls the plugin's factory with a host Context.
#pragma once

#include "config/diagnostics.hpp"
#include "config/toml_value.hpp"
#include "plugin/component_registry.hpp"

#include <ssld/component.hpp>

#include <memory>
#include <string>

namespace ssld::host {

class ComponentFactory {
 public:
  ComponentFactory(const ComponentRegistry& registry, c10::Device device, uint64_t seed)
      : registry_(registry), device_(device), seed_(seed) {}

  // `label` names the slot in messages ("student", "loss[1]"); `host_schema` declares the
  // keys beside `type` that the host reads itself. Every problem goes to `diagnostics`;
  // returns nullptr when there was one.
  std::unique_ptr<Component> create(Kind kind, const TomlValue& table, const std::string& label,
                                    const Schema& host_schema, Diagnostics& diagnostics) const;

  // Only the checks before construction: the type exists and the table fits its schema.
  // Returns the registered component, or nullptr after adding the problems to `diagnostics`.
  const RegisteredComponent* validate(Kind kind, const TomlValue& table, const std::string& label,
                                      const Schema& host_schema, Diagnostics& diagnostics) const;

  // The same, throwing ConfigError; for components that build others (Context::create).
  std::unique_ptr<Component> create(Kind kind, const TomlValue& table, const std::string& label) const;

  c10::Device device() const { return device_; }
  uint64_t seed() const { return seed_; }
  const ComponentRegistry& registry() const { return registry_; }

 private:
  const ComponentRegistry& registry_;
  c10::Device device_;
  uint64_t seed_;
};

}  // namespace ssld::host
