#include "sweep/sweep_manifest.hpp"

#include "core/atomic_file.hpp"
#include "core/bounded_input.hpp"

#include <ssld/error.hpp>

#include <fstream>
#include <map>

namespace ssld::host {

bool sweep_run_finished(const std::filesystem::path& run_folder, const std::vector<std::string>& stages) {
  if (stages.empty()) return false;
  for (const auto& stage : stages)
    if (!std::filesystem::exists(run_folder / stage / "summary.json")) return false;
  return true;
}

bool sweep_run_has_checkpoint(const std::filesystem::path& run_folder, const std::vector<std::string>& stages) {
  for (const auto& stage : stages)
    if (std::filesystem::exists(run_folder / stage / "checkpoints" / "last.safetensors")) return true;
  return false;
}

namespace {

nlohmann::json run_entry(const SweepRun& run, const std::vector<std::string>& stages) {
  nlohmann::json assignment = nlohmann::json::object(), labels = nlohmann::json::object();
  for (const auto& [key, value, label] : run.assignment) {
    assignment[key] = toml_to_json(value);
    labels[key] = label.empty() ? axis_value_text(value) : label;
  }
  return {{"id", run.id},
          {"assignment", assignment},
          {"labels", labels},
          {"seed", run.seed ? nlohmann::json(*run.seed) : nlohmann::json()},
          {"stages", stages},
          {"status", kRunPending},
          {"exit_code", nullptr},
          {"error", ""},
          {"started", ""},
          {"finished", ""},
          {"seconds", 0.0},
          {"device", ""}};
}

}  // namespace

nlohmann::json make_sweep_manifest(const std::string& config_path, const SweepSpec& spec,
                                   const std::vector<SweepRun>& runs,
                                   const std::vector<std::vector<std::string>>& stages,
                                   const std::filesystem::path& sweep_folder, const nlohmann::json& previous) {
  std::map<std::string, nlohmann::json> earlier;
  if (previous.is_object() && previous.contains("runs"))
    for (const auto& entry : previous.at("runs"))  // an entry without a string id is planned anew
      if (entry.is_object() && entry.contains("id") && entry.at("id").is_string()) earlier[entry.at("id")] = entry;

  nlohmann::json axes = nlohmann::json::object();
  for (const auto& axis : spec.axes) {
    nlohmann::json values = nlohmann::json::array();
    for (const auto& value : axis.values) values.push_back(toml_to_json(value));
    axes[axis.key] = values;
  }
  nlohmann::json manifest = {{"config", std::filesystem::absolute(config_path).lexically_normal().string()},
                             {"mode", spec.mode},
                             {"seeds", spec.seeds},
                             {"axes", axes},
                             {"runs", nlohmann::json::array()}};
  for (size_t i = 0; i < runs.size(); ++i) {
    nlohmann::json entry = run_entry(runs[i], stages[i]);
    if (const auto found = earlier.find(runs[i].id); found != earlier.end())
      for (const char* key : {"status", "exit_code", "error", "started", "finished", "seconds", "device"})
        if (found->second.contains(key)) entry[key] = found->second.at(key);
    if (sweep_run_finished(sweep_run_folder(sweep_folder, runs[i].id), stages[i]))
      entry["status"] = kRunDone;
    else if (entry["status"] != kRunFailed)
      entry["status"] = kRunPending;  // "running" or "done" left by an earlier sweep that did not finish it
    manifest["runs"].push_back(entry);
  }
  return manifest;
}

nlohmann::json read_sweep_manifest(const std::filesystem::path& sweep_folder) {
  const auto path = sweep_manifest_path(sweep_folder);
  if (!std::filesystem::exists(path)) return nullptr;
  const nlohmann::json manifest = read_json_file(path, "sweep manifest");
  if (!manifest.is_object() || !manifest.contains("runs") || !manifest.at("runs").is_array())
    throw Error("the sweep manifest " + path.string() + " is damaged (no list of runs): delete it to plan the sweep again");
  return manifest;
}

void write_sweep_manifest(const std::filesystem::path& sweep_folder, const nlohmann::json& manifest) {
  std::filesystem::create_directories(sweep_folder);
  write_file_atomically(sweep_manifest_path(sweep_folder).string(), manifest.dump(2) + "\n");
}

}  // namespace ssld::host
