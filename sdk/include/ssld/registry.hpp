// Layer 2 of the plugin contract: after the handshake is accepted, a plugin's registration
// entry point adds its components to the host's Registry, keyed by (kind, name). The helpers
// here wrap every factory so that no exception crosses into the host unconverted.
#pragma once

#include <ssld/augmentation.hpp>
#include <ssld/component.hpp>
#include <ssld/data.hpp>
#include <ssld/loss.hpp>
#include <ssld/model.hpp>
#include <ssld/options.hpp>

#include <functional>
#include <memory>
#include <string>
#include <type_traits>

namespace ssld {

// What a factory hands back: a component, or an error message and no component.
struct FactoryResult {
  std::unique_ptr<Component> component;
  std::string error;
};

using Factory = std::function<FactoryResult(const Options& options, const Context& context)>;

struct ComponentInfo {
  Kind kind = Kind::Student;
  std::string name;  // unique per kind across all loaded plugins
  std::string doc;   // one or two sentences for `ssld plugins`
  Schema schema;     // every option the component reads
};

// Implemented by the host. add() never throws: a duplicate (kind, name) is recorded and
// reported by the host with both plugin files.
class Registry {
 public:
  virtual ~Registry() = default;
  virtual void add(ComponentInfo info, Factory factory) = 0;
};

template <class Interface> constexpr Kind kind_of();
template <> constexpr Kind kind_of<Dataset>() { return Kind::Dataset; }
template <> constexpr Kind kind_of<Sampler>() { return Kind::Sampler; }
template <> constexpr Kind kind_of<Augmentation>() { return Kind::Augmentation; }
template <> constexpr Kind kind_of<BatchAugmentation>() { return Kind::BatchAugmentation; }
template <> constexpr Kind kind_of<Teacher>() { return Kind::Teacher; }
template <> constexpr Kind kind_of<Student>() { return Kind::Student; }
template <> constexpr Kind kind_of<Loss>() { return Kind::Loss; }

// Registers `Implementation` (constructible from (const Options&, const Context&)) as the
// component `name` of the kind of `Interface`. Exceptions from its constructor are caught
// here, inside the plugin, and returned as the factory's error.
template <class Interface, class Implementation>
void add_component(Registry& registry, std::string name, std::string doc, Schema schema) {
  static_assert(std::is_base_of_v<Interface, Implementation>, "Implementation must derive from Interface");
  static_assert(std::is_constructible_v<Implementation, const Options&, const Context&>,
                "Implementation needs a constructor (const ssld::Options&, const ssld::Context&)");
  Factory factory = [](const Options& options, const Context& context) -> FactoryResult {
    try {
      return FactoryResult{std::make_unique<Implementation>(options, context), {}};
    } catch (const std::exception& error) {
      return FactoryResult{nullptr, error.what()};
    } catch (...) {
      return FactoryResult{nullptr, "unknown exception (not derived from std::exception)"};
    }
  };
  registry.add(ComponentInfo{kind_of<Interface>(), std::move(name), std::move(doc), std::move(schema)},
               std::move(factory));
}

// Typed front of Context::create, for components that own others (an ensemble teacher).
template <class Interface>
std::unique_ptr<Interface> create(const Context& context, const Options& table) {
  std::unique_ptr<Component> made = context.create(kind_of<Interface>(), table);
  return std::unique_ptr<Interface>(static_cast<Interface*>(made.release()));
}

}  // namespace ssld
