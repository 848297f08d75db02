#include "stage/stages.hpp"

#include "config/config_loader.hpp"
#include "plugin/builtin_components.hpp"
#include "stage/config_schema.hpp"

#include <set>

namespace ssld::host {

std::vector<Stage> expand_stages(const TomlValue& root, Diagnostics& diagnostics) {
  TomlValue common = root;
  common.as_table().erase("stage");
  if (!root.contains("stage")) return {Stage{"main", common}};
  const TomlValue& list = root.at("stage");
  if (!list.is_array()) {
    diagnostics.add(SourcePlace::of(list), "'stage' is a list of tables: write [[stage]]");
    return {};
  }
  std::vector<Stage> stages;
  std::set<std::string> names;
  for (const auto& table : list.as_array()) {
    if (!table.is_table() || !table.contains("name") || !table.at("name").is_string()) {
      diagnostics.add(SourcePlace::of(table), "every [[stage]] needs name = \"...\"");
      continue;
    }
    const std::string name = table.at("name").as_string().str;
    if (name.empty() || name.find_first_of("/\\. ") != std::string::npos)
      diagnostics.add(SourcePlace::of(table.at("name")), "stage name '" + name + "' must be a plain folder name");
    if (!names.insert(name).second)
      diagnostics.add(SourcePlace::of(table.at("name")), "two stages are named '" + name + "'");
    TomlValue overlay = table;
    overlay.as_table().erase("name");
    TomlValue config = common;
    merge_config(config, overlay);
    stages.push_back(Stage{name, std::move(config)});
  }
  return stages;
}

std::filesystem::path stage_weights(const std::filesystem::path& stage_folder, const std::string& which) {
  return stage_folder / (which == "last" ? "student.safetensors" : "best.safetensors");
}

namespace {
// (stage index, which) of a reference, or -1 with a diagnostic.
int find_stage(const TomlValue& name, const std::vector<Stage>& earlier, const std::string& current,
               Diagnostics& diagnostics) {
  if (!name.is_string()) {
    diagnostics.add(SourcePlace::of(name), "a stage reference is a stage's name (a string)");
    return -1;
  }
  std::vector<std::string> names;
  for (size_t i = 0; i < earlier.size(); ++i) {
    if (earlier[i].name == name.as_string().str) return static_cast<int>(i);
    names.push_back(earlier[i].name);
  }
  diagnostics.add(SourcePlace::of(name), "stage '" + current + "' refers to '" + name.as_string().str +
                                             "', which is not an earlier stage" + did_you_mean(name.as_string().str, names));
  return -1;
}

std::string which_of(TomlTable& table, const std::string& key, Diagnostics& diagnostics) {
  std::string which = "best";
  if (auto found = table.find(key); found != table.end()) {
    if (!found->second.is_string() || (found->second.as_string().str != "best" && found->second.as_string().str != "last"))
      diagnostics.add(SourcePlace::of(found->second), key + " is \"best\" or \"last\"");
    else
      which = found->second.as_string().str;
    table.erase(found);
  }
  return which;
}
}  // namespace

void resolve_stage_references(Stage& stage, const std::vector<Stage>& earlier,
                              const std::vector<std::filesystem::path>& folders, Diagnostics& diagnostics) {
  TomlTable& root = stage.config.as_table();
  if (auto teacher = root.find("teacher"); teacher != root.end() && teacher->second.is_table() &&
                                          teacher->second.contains("stage")) {
    TomlTable& table = teacher->second.as_table();
    const TomlValue reference = table.at("stage");
    table.erase("stage");
    const std::string which = which_of(table, "which", diagnostics);
    const int index = find_stage(reference, earlier, stage.name, diagnostics);
    if (index >= 0) {
      if (!earlier[index].config.contains("student"))
        diagnostics.add(SourcePlace::of(reference), "stage '" + earlier[index].name + "' has no [student]");
      else
        table[builtin::kCheckpointTeacher.student] = earlier[index].config.at("student");
      table.erase("type");
      table.emplace("type", TomlValue(builtin::kCheckpointTeacher.type));
      table[builtin::kCheckpointTeacher.weights] = TomlValue(stage_weights(folders[index], which).string());
    }
  }
  if (auto student = root.find("student"); student != root.end() && student->second.is_table() &&
                                          student->second.contains("init_from")) {
    TomlTable& table = student->second.as_table();
    const TomlValue reference = table.at("init_from");
    const std::string which = which_of(table, "init_which", diagnostics);
    const int index = find_stage(reference, earlier, stage.name, diagnostics);
    // The stage name becomes that stage's weights file.
    if (table.count("weights"))
      diagnostics.add(SourcePlace::of(reference), "the student has both init_from and weights: keep one");
    else if (index >= 0)
      table["weights"] = TomlValue(stage_weights(folders[index], which).string());
    table.erase("init_from");
  }
  // A `checkpoint` teacher's nested student table is only the architecture: the host's
  // student keys (where the earlier stage's student started from) do not apply to it.
  if (auto teacher = root.find("teacher"); teacher != root.end() && teacher->second.is_table() &&
                                          teacher->second.contains("student") && teacher->second.at("student").is_table()) {
    strip_student_host_keys(teacher->second.as_table()["student"].as_table());
  }
}

}  // namespace ssld::host
