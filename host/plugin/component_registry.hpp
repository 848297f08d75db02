// The host's side of ssld::Registry: every component of every loaded plugin, keyed by
// (kind, name), with the plugin it came from so clashes and errors can name files.
#pragma once

#include <ssld/registry.hpp>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace ssld::host {

struct PluginRecord {
  std::string file;  // absolute path of the shared library
  std::string name;
  std::string version;
  uint16_t abi_major = 0;
  uint16_t abi_minor = 0;

  std::string describe() const;  // "/x/libssld_small_cnn.so (plugin small_cnn 0.1.0)"
};

struct RegisteredComponent {
  ComponentInfo info;
  std::shared_ptr<const Schema> schema;
  Factory factory;
  const PluginRecord* plugin = nullptr;

  std::string describe() const;  // "student 'small_cnn'"
};

class ComponentRegistry : public Registry {
 public:
  // Components added from now on are attributed to `plugin` (owned by the caller).
  void begin_plugin(const PluginRecord* plugin);
  void add(ComponentInfo info, Factory factory) override;
  // Clashes and malformed registrations since the last call, one message each.
  std::vector<std::string> take_problems();

  const RegisteredComponent* find(Kind kind, const std::string& name) const;
  std::vector<std::string> names(Kind kind) const;
  // Every component, ordered by kind then name.
  std::vector<const RegisteredComponent*> all() const;

 private:
  std::map<std::pair<Kind, std::string>, RegisteredComponent> components_;
  const PluginRecord* current_plugin_ = nullptr;
  std::vector<std::string> problems_;
};

}  // namespace ssld::host
