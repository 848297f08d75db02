// `ssld mine CONFIG`: the teacher of the config (or of --stage) predicts every candidate of
// [[mine.sources]]; the most confident per class, minus near-duplicates of the protected
// images, become a file list for the `file_list` dataset (see host/mine/).
#include "cli/command_setup.hpp"
#include "cli/commands.hpp"
#include "cli/run_layout.hpp"
#include "mine/mine_config.hpp"
#include "mine/miner.hpp"

#include <ssld/rng.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>

namespace ssld::host {

namespace {

namespace fs = std::filesystem;

std::vector<std::string> class_names_of(const std::vector<const DataPipeline*>& pipelines) {
  for (const DataPipeline* pipeline : pipelines)
    if (pipeline)
      for (const auto& source : pipeline->sources)
        if (auto names = source->class_names(); !names.empty()) return names;
  return {};
}

std::string identity_of(const TomlValue& config, const Teacher& teacher, const DataPipeline& candidates) {
  std::string text = toml::format(config.at("mine")) + "|" + teacher.identity();
  for (const auto& source : candidates.sources) text += "|" + source->identity();
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(Rng::purpose_of(text)));
  return hex;
}

bool finished(const MineFiles& files) {
  std::ifstream in(files.state());
  if (!in) return false;
  try {
    return nlohmann::json::parse(in).value("done", false);
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

int run_mine(const MineCommand& command) {
  Diagnostics diagnostics;
  const auto setup = set_up_command(command.config, command.overrides, diagnostics);
  diagnostics.throw_if_any();
  const SelectedStage selected = select_stage(setup->root, setup->run, command.config, command.stage, diagnostics);
  const TomlValue& config = selected.stage.config;
  if (!config.contains("mine"))
    throw ConfigError(SourcePlace{command.config, 0, 0}, "the config has no [mine] table (see README: ssld mine)");
  if (!config.contains("teacher"))
    throw ConfigError(SourcePlace{command.config, 0, 0}, "the config has no [teacher] to mine with");
  const MineSettings settings = read_mine_settings(config, diagnostics);

  const ComponentFactory& factory = *setup->factory;
  auto component = factory.create(Kind::Teacher, config.at("teacher"), "teacher", Schema(), diagnostics);
  std::unique_ptr<Teacher> teacher(static_cast<Teacher*>(component.release()));
  const TomlValue data = config.contains("data") ? config.at("data") : TomlValue(TomlTable{});
  auto candidates = build_pipeline_from(data, candidate_pipeline_table(config), "mine", "mine", factory, Sharding{},
                                        diagnostics);
  std::unique_ptr<DataPipeline> protected_images;
  if (settings.dedup.enabled()) {
    const TomlValue& mine = config.at("mine");
    const bool own = mine.contains("protected") && mine.at("protected").contains("sources");
    if (const auto table = protected_pipeline_table(config))
      protected_images = build_pipeline_from(data, *table, "protected", own ? "mine.protected" : "data.val", factory,
                                             Sharding{}, diagnostics);
  }
  if (teacher) {
    const TomlValue& mine = config.at("mine");
    for (const int64_t c : settings.selection.classes)
      if (c >= teacher->num_classes())
        diagnostics.add(SourcePlace::of(mine.at("classes")), "[mine] classes: " + std::to_string(c) +
                                                                 " is not a class of the teacher (it predicts " +
                                                                 std::to_string(teacher->num_classes()) + ")");
    const auto names = teacher->feature_names();
    if (settings.dedup.feature &&
        std::find(names.begin(), names.end(), settings.dedup.feature_name) == names.end()) {
      std::string known;
      for (const auto& name : names) known += (known.empty() ? "" : ", ") + name;
      diagnostics.add(SourcePlace::of(mine.at("dedup").at("feature")),
                      "[mine.dedup] feature: the teacher has no feature '" + settings.dedup.feature_name + "' (" +
                          (known.empty() ? "it names none: use method = \"phash\"" : "it has: " + known) + ")");
    }
  }
  diagnostics.throw_if_any();

  MineFiles files{settings.output.empty() ? run_folder(setup->run) / "mine" : fs::absolute(settings.output)};
  if (command.restart) {
    for (const auto& file : {files.list(), files.summary_json(), files.summary_markdown(), files.removed_pairs(),
                             files.state()})
      fs::remove(file);
    fs::remove_all(files.images());
  }
  const bool has_state = fs::exists(files.state());
  if (has_state && finished(files)) {
    std::printf("already mined: %s (summary: %s); --restart mines again\n", files.list().c_str(),
                files.summary_markdown().c_str());
    return 0;
  }
  if (has_state && !command.resume)
    throw Error("'" + files.state().string() +
                "' holds an unfinished mining run: continue it with --resume, or start over with --restart");
  if (command.resume && !has_state) throw Error("--resume: no mining state at '" + files.state().string() + "'");

  teacher->to(setup->device);
  MineJob job;
  job.settings = settings;
  job.candidates = candidates.get();
  job.protected_images = protected_images.get();
  job.teacher = teacher.get();
  job.device = setup->device;
  job.seed = static_cast<uint64_t>(setup->run.seed);
  job.identity = identity_of(config, *teacher, *candidates);
  job.files = files;
  job.class_names = class_names_of({protected_images.get(), candidates.get()});
  job.resume = command.resume;
  const MineOutcome outcome = mine(job);
  std::printf("mined %lld of %lld candidates (%lld near-duplicates of protected images removed) in %.1f s\n"
              "list: %s\nsummary: %s\n",
              static_cast<long long>(outcome.selected), static_cast<long long>(outcome.candidates),
              static_cast<long long>(outcome.duplicates), outcome.seconds, files.list().c_str(),
              files.summary_markdown().c_str());
  return 0;
}

}  // namespace ssld::host
