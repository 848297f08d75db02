#include "components/component_factory.hpp"

#include "config/toml_options.hpp"
#include "weights/safetensors.hpp"
#include "weights/state_dict.hpp"

#include <ssld/loss.hpp>
#include <ssld/model.hpp>

#include <ATen/Context.h>

#include <spdlog/spdlog.h>

namespace ssld::host {

namespace {

void log_as(const std::string& owner, LogLevel level, const std::string& message) {
  static constexpr spdlog::level::level_enum levels[] = {spdlog::level::debug, spdlog::level::info,
                                                        spdlog::level::warn, spdlog::level::err};
  const auto index = static_cast<std::size_t>(level);
  spdlog::log(index < 4 ? levels[index] : spdlog::level::info, "{}: {}", owner, message);
}

// The Context a factory receives; lives only during the factory call.
class HostContext : public Context {
 public:
  HostContext(const ComponentFactory& factory, std::string owner) : factory_(factory), owner_(std::move(owner)) {}

  c10::Device device() const override { return factory_.device(); }
  uint64_t seed() const override { return factory_.seed(); }
  void log(LogLevel level, const std::string& message) const override { log_as(owner_, level, message); }
  std::function<void(LogLevel, const std::string&)> logger() const override {
    return [owner = owner_](LogLevel level, const std::string& message) { log_as(owner, level, message); };
  }
  std::unique_ptr<Component> create(Kind kind, const Options& table) const override {
    const auto* options = dynamic_cast<const TomlOptions*>(&table);
    if (options == nullptr) throw Error(owner_ + ": Context::create needs a table from its own options");
    return factory_.create(kind, options->table(), options->owner());
  }
  void load_weights(Student& student, const std::string& path) const override {
    load_state_dict(student, read_weights(path), path);
  }

 private:
  const ComponentFactory& factory_;
  std::string owner_;
};

// A teacher from a plugin built before ABI 1.1 has no named_state() in its vtable: the host
// talks to it through this wrapper, which answers {} (nothing to verify) instead.
class PreStateTeacher : public Teacher {
 public:
  explicit PreStateTeacher(std::unique_ptr<Teacher> inner) : inner_(std::move(inner)) {}
  ModelOutput forward(const at::Tensor& images, const std::vector<std::string>& features) override {
    return inner_->forward(images, features);
  }
  void to(c10::Device device) override { inner_->to(device); }
  int64_t num_classes() const override { return inner_->num_classes(); }
  std::vector<std::string> feature_names() const override { return inner_->feature_names(); }
  std::string identity() const override { return inner_->identity(); }

 private:
  std::unique_ptr<Teacher> inner_;
};

// A loss from a plugin built before ABI 1.2 has no prepare(), named_parameters(), ... in its
// vtable: the host talks to it through this wrapper, which keeps their defaults (no state).
class PreStateLoss : public Loss {
 public:
  explicit PreStateLoss(std::unique_ptr<Loss> inner) : inner_(std::move(inner)) {}
  LossOutput compute(const LossInputs& inputs) override { return inner_->compute(inputs); }
  bool needs_teacher() const override { return inner_->needs_teacher(); }
  bool uses_labels() const override { return inner_->uses_labels(); }
  std::vector<std::string> student_features() const override { return inner_->student_features(); }
  std::vector<std::string> teacher_features() const override { return inner_->teacher_features(); }

 private:
  std::unique_ptr<Loss> inner_;
};

std::string list(const std::vector<std::string>& names) {
  std::string text;
  for (const auto& name : names) text += (text.empty() ? "" : ", ") + name;
  return text;
}

}  // namespace

const RegisteredComponent* ComponentFactory::validate(Kind kind, const TomlValue& table, const std::string& label,
                                                      const Schema& host_schema, Diagnostics& diagnostics) const {
  const std::string kind_name = to_string(kind);
  if (!table.is_table()) {
    diagnostics.add(SourcePlace::of(table), label + " must be a table with a `type`, found " + toml_type_name(table));
    return nullptr;
  }
  if (!table.contains("type") || !table.at("type").is_string()) {
    diagnostics.add(SourcePlace::of(table.contains("type") ? table.at("type") : table),
                    label + " needs `type = \"<" + kind_name + " name>\"`; available: " + list(registry_.names(kind)));
    return nullptr;
  }
  const TomlValue& type = table.at("type");
  const std::string name = type.as_string().str;
  const RegisteredComponent* component = registry_.find(kind, name);
  if (component == nullptr) {
    const auto available = registry_.names(kind);
    diagnostics.add(SourcePlace::of(type),
                    "unknown " + kind_name + " '" + name + "' in " + label + did_you_mean(name, available) +
                        (available.empty() ? " No " + kind_name + " plugin is loaded: check the plugin path."
                                           : " Available " + kind_name + "s: " + list(available) + "."));
    return nullptr;
  }
  Schema accepted = *component->schema;  // the component's options plus the slot's host keys
  for (const auto& spec : host_schema.options()) accepted.add_spec(spec);
  Diagnostics problems;
  validate_options(table, accepted, kind_name + " '" + name + "'", {"type"}, problems);
  if (!problems.empty()) {
    for (const auto& problem : problems.items()) diagnostics.add(problem.place, problem.message);
    return nullptr;
  }
  return component;
}

std::unique_ptr<Component> ComponentFactory::create(Kind kind, const TomlValue& table, const std::string& label,
                                                    const Schema& host_schema, Diagnostics& diagnostics) const {
  const RegisteredComponent* component = validate(kind, table, label, host_schema, diagnostics);
  if (component == nullptr) return nullptr;
  const std::string owner = std::string(to_string(kind)) + " '" + component->info.name + "'";
  const TomlOptions options(table, component->schema, owner);
  const HostContext context(*this, owner);
  // Initialization that draws from torch's generator (a model's weights) starts from the run's
  // seed in every factory, so a plugin need not seed it (Context::seed says so).
  at::manual_seed(seed_);
  FactoryResult made = component->factory(options, context);
  if (!made.error.empty() || !made.component) {
    const std::string origin = component->plugin ? " (from " + component->plugin->describe() + ")" : "";
    diagnostics.add(SourcePlace::of(table), "cannot create " + owner + origin + ": " +
                                                (made.error.empty() ? "its factory returned nothing" : made.error));
    return nullptr;
  }
  if (kind == Kind::Teacher && component->plugin && component->plugin->abi_minor < 1) {
    spdlog::warn("{} comes from a plugin built for ABI {}.{}: its weights cannot be checked for changes; rebuild it "
                 "against this SDK", owner, component->plugin->abi_major, component->plugin->abi_minor);
    return std::make_unique<PreStateTeacher>(
        std::unique_ptr<Teacher>(static_cast<Teacher*>(made.component.release())));
  }
  if (kind == Kind::Loss && component->plugin && component->plugin->abi_minor < 2)
    return std::make_unique<PreStateLoss>(std::unique_ptr<Loss>(static_cast<Loss*>(made.component.release())));
  return std::move(made.component);
}

std::unique_ptr<Component> ComponentFactory::create(Kind kind, const TomlValue& table, const std::string& label) const {
  Diagnostics diagnostics;
  auto component = create(kind, table, label, Schema(), diagnostics);
  diagnostics.throw_if_any();
  return component;
}

}  // namespace ssld::host
