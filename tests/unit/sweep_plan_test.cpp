// The sweep plan: [sweep] expanded into runs (grid, zip, seeds), stable ids, axis values set
// into each run's config (plugin choices, whole tables, stage entries), and its config errors.
#include "config/config_loader.hpp"
#include "config/diagnostics.hpp"
#include "sweep/sweep_plan.hpp"
#include "sweep/sweep_runner.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <set>

using namespace ssld::host;
using ssld::test::TempDir;
using ssld::test::error_of;

namespace {

const std::string kBase = R"(
[run]
name = "s"
seed = 7
[student]
type = "small_cnn"
width = 8
[teacher]
type = "checkpoint"
weights = "teacher.safetensors"
student = { type = "small_cnn", width = 32 }
[[loss]]
type = "ssld"
[train]
epochs = 1
[[stage]]
name = "a"
[[stage]]
name = "b"
train = { lr = 0.1 }
)";

TomlValue load(const TempDir& dir, const std::string& sweep) {
  return load_config(dir.write("c.toml", kBase + sweep));
}

}  // namespace

TEST(SweepPlan, GridIsTheProductOfTheAxesTimesTheSeeds) {
  TempDir dir;
  const TomlValue root = load(dir, R"(
[sweep]
seeds = [0, 1]
[sweep.axes]
"loss.0.type" = ["ssld", "kl", "dkd"]
"student.width" = [8, 16]
)");
  const SweepSpec spec = read_sweep_spec(root);
  EXPECT_EQ(spec.mode, "grid");
  const auto runs = expand_sweep(spec);
  ASSERT_EQ(runs.size(), 12u);
  // Axes in key order, the last fastest, seeds innermost.
  EXPECT_EQ(runs[0].id.substr(0, runs[0].id.rfind('-')), "loss.0.type=ssld,student.width=8,seed=0");
  EXPECT_EQ(runs[1].id.substr(0, runs[1].id.rfind('-')), "loss.0.type=ssld,student.width=8,seed=1");
  EXPECT_EQ(runs[2].id.substr(0, runs[2].id.rfind('-')), "loss.0.type=ssld,student.width=16,seed=0");
  EXPECT_EQ(runs[11].id.substr(0, runs[11].id.rfind('-')), "loss.0.type=dkd,student.width=16,seed=1");
  std::set<std::string> ids;
  for (const auto& run : runs) ids.insert(run.id);
  EXPECT_EQ(ids.size(), runs.size()) << "every run has its own id";

  // The plugin-choice axis picks the loss; the seed lands in [run]; [sweep] is gone.
  const TomlValue config = sweep_run_config(root, spec, runs[11]);
  EXPECT_EQ(config.at("loss").as_array()[0].at("type").as_string().str, "dkd");
  EXPECT_EQ(config.at("student").at("width").as_integer(), 16);
  EXPECT_EQ(config.at("student").at("type").as_string().str, "small_cnn");
  EXPECT_EQ(config.at("run").at("seed").as_integer(), 1);
  EXPECT_FALSE(config.contains("sweep"));
}

TEST(SweepPlan, ZipPairsTheAxesAndWithoutSeedsKeepsTheRunSeed) {
  TempDir dir;
  const TomlValue root = load(dir, R"(
[sweep]
mode = "zip"
[sweep.axes]
"train.epochs" = [2, 4, 8]
"stage.1.train.lr" = [0.1, 0.05, 0.025]
)");
  const SweepSpec spec = read_sweep_spec(root);
  const auto runs = expand_sweep(spec);
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_FALSE(runs[0].seed.has_value());
  const TomlValue config = sweep_run_config(root, spec, runs[2]);
  EXPECT_EQ(config.at("train").at("epochs").as_integer(), 8);
  EXPECT_DOUBLE_EQ(config.at("stage").as_array()[1].at("train").at("lr").as_floating(), 0.025);
  EXPECT_EQ(config.at("run").at("seed").as_integer(), 7);
  EXPECT_EQ(runs[2].id.substr(0, runs[2].id.rfind('-')), "stage.1.train.lr=0.025,train.epochs=8");
}

TEST(SweepPlan, SeedsAloneMakeOneRunPerSeed) {
  TempDir dir;
  const auto runs = expand_sweep(read_sweep_spec(load(dir, "[sweep]\nseeds = [3, 4, 5]\n")));
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[1].id.substr(0, runs[1].id.rfind('-')), "seed=4");
  EXPECT_EQ(*runs[2].seed, 5);
}

TEST(SweepPlan, ATableValuedAxisReplacesTheTableWhole) {
  TempDir dir;
  const TomlValue root = load(dir, R"(
[sweep.axes]
teacher = [
  { type = "checkpoint", weights = "big.safetensors", student = { type = "small_cnn", width = 64 } },
  { type = "torchscript", path = "t.pt" },
]
)");
  const SweepSpec spec = read_sweep_spec(root);
  const auto runs = expand_sweep(spec);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].id.substr(0, runs[0].id.rfind('-')), "teacher=checkpoint");
  EXPECT_EQ(runs[1].id.substr(0, runs[1].id.rfind('-')), "teacher=torchscript");
  const TomlValue first = sweep_run_config(root, spec, runs[0]);
  EXPECT_EQ(first.at("teacher").at("student").at("width").as_integer(), 64);
  const TomlValue second = sweep_run_config(root, spec, runs[1]);
  EXPECT_EQ(second.at("teacher").at("type").as_string().str, "torchscript");
  EXPECT_FALSE(second.at("teacher").contains("weights")) << "no key of the replaced table is left behind";
  EXPECT_FALSE(second.at("teacher").contains("student"));
}

TEST(SweepPlan, IdsAreStableAndDifferForDifferentAssignments) {
  TempDir one, two;
  const std::string sweep = "[sweep]\nseeds = [0, 1]\n[sweep.axes]\n\"loss.0.type\" = [\"kl\", \"dist\"]\n";
  const auto first = expand_sweep(read_sweep_spec(load(one, sweep)));
  // The same assignment written elsewhere, with the axis values in another order.
  const auto second =
      expand_sweep(read_sweep_spec(load(two, "[sweep]\nseeds = [1, 0]\n[sweep.axes]\n\"loss.0.type\" = [\"dist\", \"kl\"]\n")));
  std::set<std::string> a, b;
  for (const auto& run : first) a.insert(run.id);
  for (const auto& run : second) b.insert(run.id);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.size(), 4u);
  // The id is a pure function of the assignment: key order does not matter, the value does.
  const TomlValue kl("kl"), sixteen(static_cast<toml::integer>(16)), eight(static_cast<toml::integer>(8));
  EXPECT_EQ(sweep_run_id({{"loss.0.type", kl}, {"student.width", sixteen}}, 1),
            sweep_run_id({{"student.width", sixteen}, {"loss.0.type", kl}}, 1));
  EXPECT_NE(sweep_run_id({{"student.width", sixteen}}, 1), sweep_run_id({{"student.width", eight}}, 1));
  EXPECT_NE(sweep_run_id({{"student.width", sixteen}}, 1), sweep_run_id({{"student.width", sixteen}}, 2));
  const std::string id = sweep_run_id({{"loss.0.type", kl}, {"student.width", sixteen}}, 1);
  EXPECT_EQ(id.substr(0, id.size() - 9), "loss.0.type=kl,student.width=16,seed=1");
  EXPECT_EQ(id.size() - id.rfind('-') - 1, 8u) << id;
}

// Whole tables read alike in a table ("[idx,idx]"): [sweep.labels] names them, and without it
// different values that read alike are numbered, identical ones are not; ids never change.
TEST(SweepPlan, LabelsNameTheValuesInListingsWithoutChangingTheIds) {
  TempDir dir;
  const std::string axes =
      "[sweep]\nmode = \"zip\"\n[sweep.axes]\n"
      "\"teacher\" = [{ type = \"checkpoint\", weights = \"a\" }, { type = \"checkpoint\", weights = \"b\" }, "
      "{ type = \"checkpoint\", weights = \"b\" }]\n\"train.epochs\" = [1, 2, 3]\n";
  const SweepSpec plain = read_sweep_spec(load(dir, axes));
  const auto& teacher = plain.axes.back().key == "teacher" ? plain.axes.back() : plain.axes.front();
  EXPECT_EQ(teacher.labels, (std::vector<std::string>{"checkpoint#1", "checkpoint#2", "checkpoint#3"}));
  const auto& epochs = plain.axes.back().key == "train.epochs" ? plain.axes.back() : plain.axes.front();
  EXPECT_EQ(epochs.labels, (std::vector<std::string>{"1", "2", "3"}));

  const SweepSpec named = read_sweep_spec(load(dir, axes + "[sweep.labels]\nteacher = [\"A\", \"B\", \"B again\"]\n"));
  const auto runs = expand_sweep(named), plain_runs = expand_sweep(plain);
  ASSERT_EQ(runs.size(), 3u);
  for (size_t i = 0; i < runs.size(); ++i) {
    EXPECT_EQ(runs[i].id, plain_runs[i].id);
    for (const auto& value : runs[i].assignment)
      if (value.key == "teacher") EXPECT_EQ(value.label, (std::vector<std::string>{"A", "B", "B again"})[i]);
  }
  // Identical values of a zip axis are not numbered: they are the same thing.
  const SweepSpec same = read_sweep_spec(
      load(dir, "[sweep]\nmode = \"zip\"\n[sweep.axes]\n\"student.width\" = [8, 8]\n\"train.epochs\" = [1, 2]\n"));
  EXPECT_EQ(same.axes.front().labels, (std::vector<std::string>{"8", "8"}));

  for (const auto& [labels, message] : std::vector<std::pair<std::string, std::string>>{
           {"teacher = [\"A\", \"B\"]", "one name per value of the axis (3 strings)"},
           {"teacher = [\"A\", \"B\", \"A\"]", "lists 'A' twice"},
           {"student = [\"A\"]", "'student', which is not an axis"},
           {"teacher = [\"A\", 2, \"C\"]", "non-empty string"}}) {
    const std::string error =
        error_of<ConfigError>([&] { read_sweep_spec(load(dir, axes + "[sweep.labels]\n" + labels + "\n")); });
    EXPECT_NE(error.find("c.toml:"), std::string::npos) << error;
    EXPECT_NE(error.find(message), std::string::npos) << error;
  }
}

TEST(SweepPlan, ZipWithAxesOfDifferentLengthsIsAnErrorAtTheAxis) {
  TempDir dir;
  const TomlValue root = load(dir, "[sweep]\nmode = \"zip\"\n[sweep.axes]\n\"student.width\" = [8, 16]\n"
                                   "\"train.epochs\" = [1, 2, 3]\n");
  const std::string error = error_of<ConfigError>([&] { read_sweep_spec(root); });
  EXPECT_NE(error.find("c.toml:"), std::string::npos) << error;
  EXPECT_NE(error.find("same length"), std::string::npos) << error;
  EXPECT_NE(error.find("'train.epochs' has 3"), std::string::npos) << error;
}

TEST(SweepPlan, EmptyAxesRepeatedValuesAndNothingToVaryAreErrors) {
  TempDir dir;
  EXPECT_NE(error_of<ConfigError>([&] { read_sweep_spec(load(dir, "[sweep.axes]\n\"student.width\" = []\n")); }).find("has no values"),
            std::string::npos);
  // In zip mode a value may repeat on one axis (paired with others); a whole position may not.
  const SweepSpec zip = read_sweep_spec(
      load(dir, "[sweep]\nmode = \"zip\"\n[sweep.axes]\n\"student.width\" = [8, 8]\n\"train.epochs\" = [1, 2]\n"));
  EXPECT_EQ(expand_sweep(zip).size(), 2u);
  EXPECT_NE(error_of<ConfigError>([&] {
              read_sweep_spec(
                  load(dir, "[sweep]\nmode = \"zip\"\n[sweep.axes]\n\"student.width\" = [8, 8]\n\"train.epochs\" = [1, 1]\n"));
            }).find("zip position 1 repeats an earlier one"),
            std::string::npos);
  EXPECT_NE(error_of<ConfigError>([&] { read_sweep_spec(load(dir, "[sweep.axes]\n\"student.width\" = [8, 8]\n")); }).find("twice"),
            std::string::npos);
  EXPECT_NE(error_of<ConfigError>([&] { read_sweep_spec(load(dir, "[sweep]\nmode = \"grid\"\n")); }).find("nothing to vary"),
            std::string::npos);
  EXPECT_NE(error_of<ConfigError>([&] { read_sweep_spec(load(dir, "")); }).find("no [sweep] table"), std::string::npos);
}

TEST(SweepPlan, AnAxisKeyThatDoesNotResolveIsAnErrorWithItsPlace) {
  TempDir dir;
  auto error_for = [&](const std::string& axis) {
    const TomlValue root = load(dir, "[sweep.axes]\n" + axis + "\n");
    const SweepSpec spec = read_sweep_spec(root);
    return error_of<ConfigError>([&] { sweep_run_config(root, spec, expand_sweep(spec).front()); });
  };
  const std::string unknown = error_for("\"studnet.width\" = [8, 16]");
  EXPECT_NE(unknown.find("c.toml:"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("'studnet' is not a top-level key"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("did you mean 'student'"), std::string::npos) << unknown;
  EXPECT_NE(error_for("\"loss.3.type\" = [\"kl\"]").find("is a list of 1 entries"), std::string::npos);
  EXPECT_NE(error_for("\"student.width.x\" = [1]").find("'student.width' is not a table"), std::string::npos)
      << error_for("\"student.width.x\" = [1]");
  // Host tables are checked with their schemas: a misspelt [train] key is caught before any run.
  const std::string host = error_for("\"train.epochz\" = [1, 2]");
  EXPECT_NE(host.find("did you mean 'epochs'"), std::string::npos) << host;
}

TEST(SweepPlan, AChildConfigHasItsFolderThreadShareDeviceAndAbsolutePaths) {
  TempDir dir;
  dir.write("teacher.safetensors", "");
  const TomlValue root = load_config(dir.write("c.toml", kBase + "[data]\nthreads = 1\n[sweep]\nseeds = [0, 1, 2]\n"),
                                     {"student.width=32", "run.name=renamed"});
  const SweepSpec spec = read_sweep_spec(root);
  const auto runs = expand_sweep(spec);
  PlannedRun planned{runs[2], sweep_run_config(root, spec, runs[2]), {"a", "b"}};
  SweepRunnerOptions options;
  options.jobs = 2;
  options.hardware_threads = 8;
  options.devices = {0, 1};
  const TomlValue config = child_config(planned, 2, dir / "sweep", options);
  EXPECT_EQ(config.at("run").at("name").as_string().str, runs[2].id);
  EXPECT_EQ(config.at("run").at("output_dir").as_string().str, (dir / "sweep" / "runs").string());
  EXPECT_EQ(config.at("run").at("threads").as_integer(), 4);  // half of 8 cores
  EXPECT_EQ(config.at("data").at("threads").as_integer(), 1);  // already below its share
  EXPECT_EQ(config.at("run").at("device").as_string().str, "cuda:0");  // third run, two devices
  EXPECT_EQ(config.at("student").at("width").as_integer(), 32) << "a --set text becomes its TOML value";
  EXPECT_EQ(config.at("teacher").at("weights").as_string().str, (dir / "teacher.safetensors").string());
  EXPECT_EQ(config.at("loss").as_array()[0].at("type").as_string().str, "ssld") << "names stay names";
}
