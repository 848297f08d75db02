#include "stage/dry_run.hpp"

#include "data/data_config.hpp"
#include "plugin/builtin_components.hpp"
#include "stage/config_schema.hpp"
#include "weights/safetensors.hpp"
#include "weights/state_dict.hpp"

#include <ssld/error.hpp>
#include <ssld/model.hpp>

#include <spdlog/spdlog.h>

#include <cstdlib>

namespace ssld::host {

namespace {

TomlValue architecture_of(const TomlValue& student) {
  TomlValue table = student;
  strip_student_host_keys(table.as_table());
  return table;
}

// `size = 224` or `size = [224, 160]` in an augmentation table: values above `limit` become it.
void clamp_sizes(TomlValue& augment, int64_t limit) {
  if (!augment.is_table() || !augment.contains("size")) return;
  TomlValue& size = augment.as_table()["size"];
  if (size.is_integer() && size.as_integer() > limit) size = TomlValue(limit);
  if (size.is_array())
    for (auto& value : size.as_array())
      if (value.is_integer() && value.as_integer() > limit) value = TomlValue(limit);
}

// Channels the pipeline's images have: as many as its `normalize` has means, else RGB.
int64_t channels_of(const TomlValue& pipeline) {
  if (pipeline.contains("batch_augment") && pipeline.at("batch_augment").is_array())
    for (const auto& augment : pipeline.at("batch_augment").as_array())
      if (augment.is_table() && augment.contains("type") && augment.at("type").is_string() &&
          augment.at("type").as_string().str == builtin::kNormalize.type &&
          augment.contains(builtin::kNormalize.mean) && augment.at(builtin::kNormalize.mean).is_array())
        return static_cast<int64_t>(augment.at(builtin::kNormalize.mean).as_array().size());
  return 3;
}

void rewrite_pipeline(TomlValue& pipeline, const std::string& name, int64_t num_classes, const DryRunSettings& settings,
                      const ComponentFactory& factory, Diagnostics& diagnostics) {
  if (!pipeline.is_table()) return;  // build_pipeline reports it
  const int64_t channels = channels_of(pipeline);
  pipeline.as_table()["batch_size"] = TomlValue(settings.batch_size);
  if (pipeline.contains("sources") && pipeline.at("sources").is_array()) {
    auto& sources = pipeline.as_table()["sources"].as_array();
    for (size_t i = 0; i < sources.size(); ++i) {
      factory.validate(Kind::Dataset, sources[i], "data." + name + ".sources[" + std::to_string(i) + "]",
                       source_host_schema(), diagnostics);
      TomlTable synthetic;
      synthetic["type"] = TomlValue(builtin::kSyntheticDataset.type);
      synthetic[builtin::kSyntheticDataset.count] = TomlValue(settings.batch_size * (name == "train" ? settings.steps : 1));
      synthetic[builtin::kSyntheticDataset.size] = TomlValue(toml::array{settings.image_size, settings.image_size});
      synthetic[builtin::kSyntheticDataset.channels] = TomlValue(channels);
      synthetic[builtin::kSyntheticDataset.num_classes] = TomlValue(num_classes);
      if (sources[i].is_table() && sources[i].contains("drop_labels")) synthetic["drop_labels"] = sources[i].at("drop_labels");
      sources[i] = TomlValue(synthetic);
    }
  }
  if (pipeline.contains("augment") && pipeline.at("augment").is_array())
    for (auto& augment : pipeline.as_table()["augment"].as_array()) clamp_sizes(augment, settings.image_size);
}

}  // namespace

ScratchFolder::ScratchFolder() {
  std::string pattern = (std::filesystem::temp_directory_path() / "ssld_dry_run_XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) throw Error("cannot create a temporary folder for the dry run");
  path_ = pattern;
}

ScratchFolder::~ScratchFolder() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

void make_dry_run(TomlValue& config, const std::string& stage_name, const DryRunSettings& settings,
                  const ComponentFactory& factory, Diagnostics& diagnostics) {
  if (!config.is_table()) return;
  TomlTable& root = config.as_table();

  int64_t num_classes = 10;
  std::unique_ptr<Student> architecture;
  if (auto student = root.find("student"); student != root.end() && student->second.is_table()) {
    if (student->second.contains("weights") && student->second.at("weights").is_string()) {
      const std::string weights = student->second.at("weights").as_string().str;
      if (!std::filesystem::exists(weights)) {
        spdlog::info("dry run, stage {}: the student's weights '{}' are not here; it starts from random weights",
                     stage_name, weights);
        student->second.as_table().erase("weights");
      }
    }
    architecture.reset(static_cast<Student*>(
        factory.create(Kind::Student, architecture_of(student->second), "student", Schema(), diagnostics).release()));
    if (architecture) num_classes = architecture->num_classes();
  }

  if (auto teacher = root.find("teacher"); teacher != root.end() && teacher->second.is_table() &&
                                           !teacher->second.contains("stage")) {
    factory.validate(Kind::Teacher, teacher->second, "teacher", Schema(), diagnostics);
    if (architecture) {
      const auto weights = settings.scratch / (stage_name + "_teacher.safetensors");
      std::filesystem::create_directories(settings.scratch);
      write_safetensors(weights.string(), state_dict(*architecture));
      TomlTable stand_in;
      stand_in["type"] = TomlValue(builtin::kCheckpointTeacher.type);
      stand_in[builtin::kCheckpointTeacher.student] = architecture_of(root.at("student"));
      stand_in[builtin::kCheckpointTeacher.weights] = TomlValue(weights.string());
      teacher->second = TomlValue(stand_in);
    }
  }

  if (auto data = root.find("data"); data != root.end() && data->second.is_table())
    for (const char* name : {"train", "val"})
      if (data->second.contains(name))
        rewrite_pipeline(data->second.as_table()[name], name, num_classes, settings, factory, diagnostics);

  TomlValue& train = root["train"];
  if (!train.is_table()) train = TomlValue(TomlTable{});
  train.as_table()["epochs"] = TomlValue(int64_t{1});
  train.as_table()["eval_every"] = TomlValue(int64_t{1});
  train.as_table()["log_every"] = TomlValue(int64_t{1});

  // A teacher cache of its own, filled in the scratch folder: the stand-in teacher's soft labels
  // must not reach a real store.
  if (auto cache = root.find("teacher_cache"); cache != root.end() && cache->second.is_table()) {
    cache->second.as_table()["store"] = TomlValue((settings.scratch / "teacher_cache").string());
    cache->second.as_table()["mode"] = TomlValue("fill");
  }
}

}  // namespace ssld::host
