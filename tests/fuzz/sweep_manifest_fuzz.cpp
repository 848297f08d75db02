// A sweep folder's manifest.json as `ssld sweep` (resuming: read_sweep_manifest, then
// make_sweep_manifest carrying over the earlier runs' records) and `ssld report`
// (write_sweep_report: the manifest, each run's summary.json and metrics) read it. The folder
// also holds one finished run, "r0" with stage "train", so the report follows real paths.
// Seeds: manifests written by write_sweep_manifest from make_sweep_manifest.
#include "fuzz_support.hpp"
#include "sweep/sweep_manifest.hpp"
#include "sweep/sweep_report.hpp"

namespace ssld::fuzz {
namespace {

using host::SweepAxis;
using host::SweepRun;
using host::SweepSpec;
using host::TomlValue;

SweepSpec spec() {
  SweepSpec s;
  s.seeds = {1, 2};
  SweepAxis axis;
  axis.key = "train.lr";
  axis.values = {TomlValue(0.1), TomlValue(0.2)};
  axis.labels = {"0.1", "0.2"};
  s.axes.push_back(axis);
  return s;
}

std::vector<SweepRun> runs() {
  std::vector<SweepRun> out;
  for (int i = 0; i < 2; ++i) {
    SweepRun run;
    run.id = "r" + std::to_string(i);
    run.assignment.push_back({"train.lr", TomlValue(0.1 * (i + 1)), ""});
    run.seed = i + 1;
    out.push_back(run);
  }
  return out;
}

const std::vector<std::vector<std::string>> kStages = {{"train"}, {"distill", "finetune"}};

void make_finished_run(const std::filesystem::path& sweep_folder) {
  const auto stage = host::sweep_run_folder(sweep_folder, "r0") / "train";
  std::filesystem::create_directories(stage);
  write_text(stage / "summary.json", R"({"result": {"best_top1": 71.5, "final_top1": 70.25, "seconds": 12.5}})");
  write_text(stage / "metrics_epochs.jsonl", "{\"epoch\": 0, \"top1\": 50.5}\n{\"epoch\": 1, \"top1\": 71.5}\n");
}

}  // namespace

void write_seeds(const std::filesystem::path& folder) {
  const auto sweep = scratch() / "seed-sweep";
  make_finished_run(sweep);
  nlohmann::json manifest = host::make_sweep_manifest("sweep.toml", spec(), runs(), kStages, sweep, nullptr);
  write_text(folder / "fresh.json", manifest.dump(2) + "\n");
  manifest["runs"][1]["status"] = host::kRunFailed;
  manifest["runs"][1]["exit_code"] = 2;
  manifest["runs"][1]["error"] = "config: train.lr must be > 0";
  manifest["runs"][0]["started"] = "2026-01-01T00:00:00";
  manifest["runs"][0]["seconds"] = 12.5;
  write_text(folder / "failed.json", manifest.dump(2) + "\n");
  std::filesystem::remove_all(sweep);
}

}  // namespace ssld::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace fuzz = ssld::fuzz;
  static const std::filesystem::path sweep = [] {
    const auto folder = fuzz::scratch() / "sweep";
    fuzz::make_finished_run(folder);
    return folder;
  }();
  fuzz::write_bytes(ssld::host::sweep_manifest_path(sweep), data, size);
  fuzz::refuse_or_read([&] {
    const nlohmann::json previous = ssld::host::read_sweep_manifest(sweep);
    (void)ssld::host::make_sweep_manifest("sweep.toml", fuzz::spec(), fuzz::runs(), fuzz::kStages, sweep, previous)
        .dump();
  });
  fuzz::refuse_or_read([&] { (void)ssld::host::write_sweep_report(sweep); });
  return 0;
}
