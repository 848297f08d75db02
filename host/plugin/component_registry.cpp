#include "plugin/component_registry.hpp"

#include <algorithm>
#include <set>

namespace ssld::host {

std::string PluginRecord::describe() const {
  return file + " (plugin " + name + " " + version + ")";
}

std::string RegisteredComponent::describe() const {
  return std::string(to_string(info.kind)) + " '" + info.name + "'";
}

void ComponentRegistry::begin_plugin(const PluginRecord* plugin) { current_plugin_ = plugin; }

namespace {

bool valid_name(const std::string& name) {
  return !name.empty() && name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") == std::string::npos;
}

// A schema mistake is the plugin author's: it is reported when the plugin loads, not when a
// user's config happens to touch the option.
std::string schema_problem(const Schema& schema) {
  std::set<std::string> seen;
  for (const auto& spec : schema.options()) {
    if (!valid_name(spec.name)) return "option name '" + spec.name + "' is not lower_snake_case";
    if (spec.name == "type") return "option name 'type' is reserved for the component's name";
    if (!seen.insert(spec.name).second) return "option '" + spec.name + "' is declared twice";
    if (!spec.choices.empty() && spec.default_value) {
      const auto& value = std::get<std::string>(*spec.default_value);
      if (std::find(spec.choices.begin(), spec.choices.end(), value) == spec.choices.end())
        return "the default '" + value + "' of option '" + spec.name + "' is not among its choices";
    }
    if (spec.nested) {
      std::string nested = schema_problem(*spec.nested);
      if (!nested.empty()) return "in table '" + spec.name + "': " + nested;
    }
  }
  return {};
}

}  // namespace

void ComponentRegistry::add(ComponentInfo info, Factory factory) {
  const std::string source = current_plugin_ ? current_plugin_->describe() : std::string("the host");
  const std::string label = std::string(to_string(info.kind)) + " '" + info.name + "'";
  if (!valid_name(info.name)) {
    problems_.push_back(source + " registers a " + to_string(info.kind) + " named '" + info.name +
                        "': names are lower_snake_case (a-z, 0-9, _)");
    return;
  }
  if (const std::string problem = schema_problem(info.schema); !problem.empty()) {
    problems_.push_back(source + " registers " + label + " with a malformed schema: " + problem);
    return;
  }
  const auto key = std::make_pair(info.kind, info.name);
  if (auto existing = components_.find(key); existing != components_.end()) {
    const std::string first =
        existing->second.plugin ? existing->second.plugin->describe() : std::string("the host");
    problems_.push_back(label + " is registered twice: first by " + first + ", again by " + source +
                        ". Each (kind, name) must be unique: remove one of the two libraries from the "
                        "plugin path, or rename the component.");
    return;
  }
  RegisteredComponent entry;
  entry.schema = std::make_shared<const Schema>(info.schema);
  entry.info = std::move(info);
  entry.factory = std::move(factory);
  entry.plugin = current_plugin_;
  components_.emplace(key, std::move(entry));
}

std::vector<std::string> ComponentRegistry::take_problems() { return std::exchange(problems_, {}); }

const RegisteredComponent* ComponentRegistry::find(Kind kind, const std::string& name) const {
  auto found = components_.find(std::make_pair(kind, name));
  return found == components_.end() ? nullptr : &found->second;
}

std::vector<std::string> ComponentRegistry::names(Kind kind) const {
  std::vector<std::string> result;
  for (const auto& [key, entry] : components_)
    if (key.first == kind) result.push_back(key.second);
  return result;
}

std::vector<const RegisteredComponent*> ComponentRegistry::all() const {
  std::vector<const RegisteredComponent*> result;
  for (const auto& [key, entry] : components_) result.push_back(&entry);
  return result;
}

}  // namespace ssld::host
