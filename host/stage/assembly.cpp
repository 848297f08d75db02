#include "stage/assembly.hpp"

#include "config/toml_options.hpp"
#include "stage/config_schema.hpp"
#include "stage/feature_probe.hpp"
#include "teacher_cache/teacher_cache.hpp"
#include "weights/state_dict.hpp"

#include <ATen/Context.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

namespace ssld::host {

namespace {
template <class Interface>
std::unique_ptr<Interface> cast(std::unique_ptr<Component> component) {
  return std::unique_ptr<Interface>(static_cast<Interface*>(component.release()));
}

const ComponentSlot& slot(const std::string& key) {
  for (const auto& candidate : component_slots())
    if (candidate.key == key) return candidate;
  throw std::logic_error("no slot " + key);
}
// [teacher_cache] for this stage: its key needs the built teacher and training pipeline.
// The plugin (name -> version) of every component the soft labels depend on: the teacher (and a
// checkpoint teacher's architecture), data.train's sources, sampler and augmentations.
nlohmann::json soft_label_plugins(const TomlValue& config, const ComponentRegistry& registry) {
  nlohmann::json plugins = nlohmann::json::object();
  auto add = [&](Kind kind, const TomlValue& table) {
    if (!table.is_table() || !table.contains("type") || !table.at("type").is_string()) return;
    const RegisteredComponent* found = registry.find(kind, table.at("type").as_string().str);
    if (found != nullptr && found->plugin != nullptr) plugins[found->plugin->name] = found->plugin->version;
  };
  auto add_list = [&](Kind kind, const TomlValue& table, const char* key) {
    if (table.is_table() && table.contains(key) && table.at(key).is_array())
      for (const auto& entry : table.at(key).as_array()) add(kind, entry);
  };
  const TomlValue& teacher = config.at("teacher");
  add(Kind::Teacher, teacher);
  if (teacher.is_table() && teacher.contains("student")) add(Kind::Student, teacher.at("student"));
  if (config.contains("data") && config.at("data").is_table() && config.at("data").contains("train")) {
    const TomlValue& train = config.at("data").at("train");
    add_list(Kind::Dataset, train, "sources");
    add_list(Kind::Augmentation, train, "augment");
    add_list(Kind::BatchAugmentation, train, "batch_augment");
    if (train.is_table() && train.contains("sampler")) add(Kind::Sampler, train.at("sampler"));
    else add(Kind::Sampler, TomlValue(TomlTable{{"type", "random"}}));
  }
  return plugins;
}

std::unique_ptr<TeacherCache> build_teacher_cache(const TomlValue& config, const StageComponents& stage,
                                                  const ComponentFactory& factory, Sharding sharding,
                                                  Diagnostics& diagnostics) {
  const SourcePlace place = SourcePlace::of(config.at("teacher_cache"));
  // A stage without a teacher (a config's teacher-training stage) has nothing to cache; one
  // whose teacher is made of weights that do not exist yet (`ssld check`) is not built.
  if (!stage.teacher || !stage.train) return nullptr;
  for (const auto& term : stage.losses)
    if (!term.loss->teacher_features().empty()) {
      diagnostics.add(place, "[teacher_cache] stores the teacher's logits only, but loss '" + term.name +
                                 "' reads teacher features: remove [teacher_cache] for this stage");
      return nullptr;
    }
  try {
    const TeacherCacheSettings settings = read_teacher_cache_settings(config, read_run_settings(config).output_dir);
    SoftLabelCodec codec(settings.format, stage.teacher->num_classes(), settings.top_k);
    nlohmann::json key = teacher_cache_key(config, *stage.teacher, factory.seed(), factory.device(),
                                           stage.settings.channels_last, codec,
                                           soft_label_plugins(config, factory.registry()), sharding.rank,
                                           sharding.world_size);
    return std::make_unique<TeacherCache>(settings, std::move(key), std::move(codec),
                                          stage.train->sampler->steps_per_epoch(), teacher_val_key(config, factory.seed()));
  } catch (const Error& error) {
    diagnostics.add(place, error.what());
    return nullptr;
  }
}

// A name the loss asks for that the model does not list: an error at the loss, with the list.
bool check_feature_names(const std::vector<std::string>& wanted, const std::vector<std::string>& available,
                         const std::string& side, const std::string& loss, const SourcePlace& place,
                         Diagnostics& diagnostics) {
  bool ok = true;
  for (const auto& name : wanted) {
    if (std::find(available.begin(), available.end(), name) != available.end()) continue;
    std::string names;
    for (const auto& known : available) names += (names.empty() ? "" : ", ") + known;
    diagnostics.add(place, "loss '" + loss + "' reads the " + side + "'s feature '" + name + "', which it does not have" +
                               did_you_mean(name, available) + "; its features: " + (names.empty() ? "none" : names) +
                               " (`ssld features CONFIG` prints them with their shapes)");
    ok = false;
  }
  return ok;
}

// Each loss learns the shapes of the features it reads (a probe forward, only when some loss
// reads any) and builds what depends on them; a teacher made of weights that do not exist yet
// (`ssld check` before its stage ran) leaves the losses unprepared until training.
void prepare_losses(StageComponents& stage, const std::vector<SourcePlace>& places, const ComponentFactory& factory,
                    Diagnostics& diagnostics) {
  if (!stage.student || !stage.train || stage.losses.empty()) return;
  std::vector<std::string> student_names, teacher_names;
  bool names_ok = true;
  for (size_t i = 0; i < stage.losses.size(); ++i) {
    const Loss& loss = *stage.losses[i].loss;
    for (const auto& name : loss.student_features()) student_names.push_back(name);
    for (const auto& name : loss.teacher_features()) teacher_names.push_back(name);
    names_ok &= check_feature_names(loss.student_features(), stage.student->feature_names(), "student",
                                    stage.losses[i].name, places[i], diagnostics);
    if (stage.teacher)
      names_ok &= check_feature_names(loss.teacher_features(), stage.teacher->feature_names(), "teacher",
                                      stage.losses[i].name, places[i], diagnostics);
  }
  if (!names_ok || (!teacher_names.empty() && !stage.teacher)) return;
  FeatureProbe probe;
  if (!student_names.empty() || !teacher_names.empty()) {
    try {
      probe = probe_features(stage.student.get(), stage.teacher.get(), *stage.train, factory.seed(), student_names,
                             teacher_names);
    } catch (const Error& error) {
      diagnostics.add(places.front(), std::string("probing the features the losses read: ") + error.what());
      return;
    }
  }
  int64_t dataset_size = 0;
  for (const auto& source : stage.train->sources) dataset_size += source->size();
  for (size_t i = 0; i < stage.losses.size(); ++i) {
    Loss& loss = *stage.losses[i].loss;
    FeatureShapes student, teacher;
    for (const auto& name : loss.student_features()) student[name] = probe.student.at(name);
    for (const auto& name : loss.teacher_features()) teacher[name] = probe.teacher.at(name);
    at::manual_seed(factory.seed());  // a connector's initialization is the same in every run
    try {
      loss.prepare(student, teacher, dataset_size);
    } catch (const Error& error) {
      diagnostics.add(places[i], "loss '" + stage.losses[i].name + "': " + error.what());
      continue;
    }
    int64_t trained = 0, kept = 0;
    for (const auto& [name, tensor] : loss.named_parameters()) trained += tensor.numel();
    for (const auto& [name, tensor] : loss.named_buffers()) kept += tensor.numel();
    if (trained > 0 || kept > 0)
      spdlog::info("loss '{}' trains {} parameters of its own and keeps {} values of state", stage.losses[i].name,
                   trained, kept);
  }
}

}  // namespace

StageComponents assemble_stage(const TomlValue& config, const ComponentFactory& factory, const AssemblyOptions& options,
                               Diagnostics& diagnostics) {
  StageComponents stage;
  validate_host_tables(config, diagnostics);
  stage.settings = read_train_settings(config, diagnostics);

  if (config.contains("student")) {
    const ComponentSlot& student_slot = slot("student");
    const TomlValue& table = config.at("student");
    stage.student = cast<Student>(factory.create(Kind::Student, table, "student", student_slot.host_schema, diagnostics));
    if (stage.student && table.contains("weights")) {
      const TomlOptions host_keys(table, std::make_shared<const Schema>(student_slot.host_schema), "student");
      const std::string weights = host_keys.get_string("weights");
      const LoadOptions load{host_keys.get_bool("strict"), host_keys.get_string_list("ignore")};
      if (options.weights_must_exist || std::filesystem::exists(weights)) {
        try {
          load_state_dict(*stage.student, read_weights(weights), weights, load);
        } catch (const Error& error) {
          diagnostics.add(SourcePlace::of(table.at("weights")), std::string("student weights: ") + error.what());
        }
      }
    }
  } else if (options.require_training) {
    diagnostics.add(SourcePlace{"(config)", 0, 0}, "the config has no [student] to train");
  }

  const bool teacher_weights_pending = config.contains("teacher") && config.at("teacher").contains("weights") &&
                                      config.at("teacher").at("weights").is_string() &&
                                      !std::filesystem::exists(config.at("teacher").at("weights").as_string().str);
  if (config.contains("teacher") && (options.weights_must_exist || !teacher_weights_pending))
    stage.teacher = cast<Teacher>(factory.create(Kind::Teacher, config.at("teacher"), "teacher", Schema(), diagnostics));

  std::vector<SourcePlace> loss_places;  // of each built loss
  if (config.contains("loss")) {
    const TomlValue& list = config.at("loss");
    if (!list.is_array()) {
      diagnostics.add(SourcePlace::of(list), "'loss' is a list of tables: write [[loss]]");
    } else {
      const ComponentSlot& loss_slot = slot("loss");
      std::map<std::string, int> seen;
      for (size_t i = 0; i < list.as_array().size(); ++i) {
        const TomlValue& table = list.as_array()[i];
        auto loss = cast<Loss>(factory.create(Kind::Loss, table, "loss[" + std::to_string(i) + "]",
                                              loss_slot.host_schema, diagnostics));
        if (!loss) continue;
        const TomlOptions host_keys(table, std::make_shared<const Schema>(loss_slot.host_schema), "loss");
        std::string name = table.at("type").as_string().str;
        if (seen[name]++ > 0) name += "#" + std::to_string(seen[name] - 1);
        if (loss->needs_teacher() && !config.contains("teacher"))
          diagnostics.add(SourcePlace::of(table), "this loss learns from a teacher, but the config has no [teacher] table");
        if (host_keys.get_float("lr_scale") < 0)
          diagnostics.add(SourcePlace::of(table.at("lr_scale")), "lr_scale must not be negative");
        stage.losses.push_back(
            WeightedLoss{std::move(loss), name, host_keys.get_float("weight"), host_keys.get_float("lr_scale")});
        loss_places.push_back(SourcePlace::of(table));
      }
    }
  } else if (options.require_training) {
    diagnostics.add(SourcePlace{"(config)", 0, 0}, "the config has no [[loss]]: nothing to train with");
  }

  stage.train = build_pipeline(config, "train", factory, options.sharding, diagnostics);
  stage.val = build_pipeline(config, "val", factory, options.sharding, diagnostics);
  if (!stage.train && options.require_training && diagnostics.empty())
    diagnostics.add(SourcePlace{"(config)", 0, 0}, "the config has no [data.train] to train on");
  if (stage.student && stage.teacher && stage.student->num_classes() != stage.teacher->num_classes())
    diagnostics.add(SourcePlace::of(config.at("teacher")),
                    "the teacher predicts " + std::to_string(stage.teacher->num_classes()) + " classes, the student " +
                        std::to_string(stage.student->num_classes()));
  if (diagnostics.empty()) prepare_losses(stage, loss_places, factory, diagnostics);
  if (config.contains("teacher_cache") && diagnostics.empty())
    stage.teacher_cache = build_teacher_cache(config, stage, factory, options.sharding, diagnostics);
  return stage;
}

}  // namespace ssld::host
