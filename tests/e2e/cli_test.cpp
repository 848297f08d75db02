// The `ssld` program as a user meets it: listing plugins, checking configs, and one clear
// paragraph with a non-zero exit code for each way a plugin or a config can be wrong.
#include "plugin/builtin_components.hpp"
#include "test_support.hpp"

#include <nlohmann/json.hpp>

#include <ssld/abi.h>

#include <gtest/gtest.h>

#include <sstream>

#include <optional>
#include <set>

using ssld::test::RunResult;
using ssld::test::TempDir;

namespace {
// "1.2": how the host prints an SDK ABI version.
std::string abi_version(int major, int minor) { return std::to_string(major) + "." + std::to_string(minor); }
}  // namespace

namespace {

const std::string kSsld = SSLD_BINARY;
const std::string kTestPlugins = SSLD_TEST_PLUGIN_ROOT;

RunResult ssld_run(const std::vector<std::string>& args, const std::string& plugin_path = "") {
  return ssld::test::run_program(kSsld, args, {{"SSLD_PLUGIN_PATH", plugin_path}});
}

RunResult plugins_with(const std::string& test_plugin) {
  return ssld_run({"plugins"}, kTestPlugins + "/" + test_plugin);
}

// A user error: exit code 2, one "ssld: error:" paragraph, no crash or stack trace.
void expect_user_error(const RunResult& result, const std::string& expected) {
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_EQ(result.err.rfind("ssld: error: ", 0), 0u) << result.err;
  EXPECT_NE(result.err.find(expected), std::string::npos) << "expected: " << expected << "\nstderr: " << result.err;
  EXPECT_EQ(result.err.find("terminate called"), std::string::npos) << result.err;
}

const char* kValidConfig = "[run]\nname = \"t\"\ndevice = \"cpu\"\n[student]\ntype = \"small_cnn\"\nwidth = 8\n";

}  // namespace

TEST(Cli, VersionNamesTheAbiAndTheBuild) {
  const RunResult result = ssld_run({"--version"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_NE(result.out.find("plugin ABI 1."), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("libtorch "), std::string::npos) << result.out;
}

// The bash completion script comes from the command line's own definitions: subcommands,
// their options (past global options and their values), and config files for the positional.
TEST(Cli, BashCompletionOffersSubcommandsOptionsAndConfigFiles) {
  const RunResult script = ssld::test::run_program(kSsld, {"completion", "bash"});
  ASSERT_EQ(script.exit_code, 0) << script.err;
  ssld::test::TempDir dir;
  dir.write("completion.bash", script.out);
  dir.write("configs/run.toml", "");
  dir.write("configs/notes.txt", "");
  auto complete = [&](const std::string& words, int current) {
    const std::string command = "cd " + ssld::test::shell_quote(dir.path().string()) + " && source completion.bash && "
                                "COMP_WORDS=(" + words + ") && COMP_CWORD=" + std::to_string(current) +
                                " && _ssld && echo \"${COMPREPLY[*]}\"";
    return ssld::test::run_program("/bin/bash", {"-c", command}).out;
  };
  EXPECT_EQ(complete("ssld tr", 1), "train\n");
  EXPECT_EQ(complete("ssld -q --log-level debug train --re", 5), "--resume --restart\n");
  EXPECT_EQ(complete("ssld export x.toml --loss", 3), "--loss-state\n");
  EXPECT_EQ(complete("ssld train configs/r", 2), "configs/run.toml\n");
}

TEST(Cli, VersionSaysHowManyThreadsItTakesAndWhy) {
  const RunResult omp = ssld::test::run_program(kSsld, {"--version"}, {{"OMP_NUM_THREADS", "1"}});
  ASSERT_EQ(omp.exit_code, 0) << omp.err;
  EXPECT_NE(omp.out.find("default threads: 1 (OMP_NUM_THREADS=1)"), std::string::npos) << omp.out;
  const RunResult pinned = ssld::test::run_program("/usr/bin/taskset", {"-c", "0", kSsld, "--version"},
                                                   {{"OMP_NUM_THREADS", ""}});
  ASSERT_EQ(pinned.exit_code, 0) << pinned.err;
  EXPECT_NE(pinned.out.find("default threads: 1 (affinity mask: 1 CPU"), std::string::npos) << pinned.out;
}

TEST(Cli, PluginsListsBuiltinsWithOptionsAsTextAndJson) {
  const RunResult text = ssld_run({"plugins"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("student small_cnn  [small_cnn 0.1.0"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("loss ssld"), std::string::npos) << text.out;
  // Every top-level option's doc starts at column 54 (4 + 20 + 12 + 18), also after a default
  // too long for its column (normalize's mean), which goes on the next line.
  std::istringstream lines(text.out);
  std::vector<std::string> all;
  for (std::string line; std::getline(lines, line);) all.push_back(line);
  int overflowed = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    const std::string& line = all[i];
    if (line.size() < 5 || line.compare(0, 4, "    ") != 0 || line[4] == ' ') continue;
    if (line.size() > 54 && line[53] == ' ' && line[54] != ' ') continue;
    ASSERT_LT(i + 1, all.size()) << line;
    const std::string& next = all[i + 1];
    EXPECT_TRUE(next.size() > 54 && next.find_first_not_of(' ') == 54) << "not aligned:\n" << line << "\n" << next;
    ++overflowed;
  }
  EXPECT_GT(overflowed, 0) << "normalize's mean default is longer than its column";

  const RunResult json = ssld_run({"plugins", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const auto parsed = nlohmann::json::parse(json.out);
  bool found = false;
  for (const auto& component : parsed.at("components")) {
    if (component.at("kind") != "student" || component.at("name") != "small_cnn") continue;
    found = true;
    EXPECT_EQ(component.at("plugin"), "small_cnn");
    bool has_width = false;
    for (const auto& option : component.at("options"))
      if (option.at("name") == "width") {
        has_width = true;
        EXPECT_EQ(option.at("type"), "int");
        EXPECT_EQ(option.at("default"), 32);
        EXPECT_FALSE(option.at("doc").get<std::string>().empty());
      }
    EXPECT_TRUE(has_width);
  }
  EXPECT_TRUE(found) << json.out;
}

// The components the host names itself (plugin/builtin_components.hpp) are registered by the
// built-in plugins, with the options the host writes.
TEST(Cli, TheBuiltinComponentsTheHostNamesAreRegisteredWithTheirOptions) {
  namespace builtin = ssld::host::builtin;
  const RunResult json = ssld_run({"plugins", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const auto components = nlohmann::json::parse(json.out).at("components");
  auto options_of = [&](const std::string& kind, const std::string& name) {
    for (const auto& component : components)
      if (component.at("kind") == kind && component.at("name") == name) {
        std::set<std::string> options;
        for (const auto& option : component.at("options")) options.insert(option.at("name").get<std::string>());
        return std::optional(options);
      }
    return std::optional<std::set<std::string>>();
  };
  const struct {
    const char* kind;
    const char* name;
    std::vector<const char*> options;
  } expected[] = {
      {"teacher", builtin::kCheckpointTeacher.type, {builtin::kCheckpointTeacher.student, builtin::kCheckpointTeacher.weights}},
      {"dataset", builtin::kSyntheticDataset.type,
       {builtin::kSyntheticDataset.count, builtin::kSyntheticDataset.size, builtin::kSyntheticDataset.channels, builtin::kSyntheticDataset.num_classes}},
      {"batch_augmentation", builtin::kNormalize.type, {builtin::kNormalize.mean}},
      {"sampler", builtin::kRandomSampler, {}},
      {"sampler", builtin::kSequentialSampler, {}},
  };
  for (const auto& component : expected) {
    const auto options = options_of(component.kind, component.name);
    ASSERT_TRUE(options) << component.kind << " " << component.name << " is not registered\n" << json.out;
    for (const char* option : component.options)
      EXPECT_TRUE(options->count(option)) << component.kind << " " << component.name << " has no option " << option;
  }
}

TEST(Cli, CheckAcceptsAValidConfigAndBuildsItsComponents) {
  TempDir dir;
  const RunResult result = ssld_run({"check", dir.write("ok.toml", kValidConfig).string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("OK (device cpu, seed 0)"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("stage main: student small_cnn"), std::string::npos) << result.out;
}

TEST(Cli, ShippedQuickstartConfigsPassCheck) {
  for (const auto& entry : std::filesystem::directory_iterator(SSLD_SOURCE_DIR "/configs/quickstart")) {
    if (entry.path().extension() != ".toml") continue;
    // A config with a [mine] table trains on the lists `ssld mine` writes, which a fresh clone
    // does not have yet: ShippedConfigs dry-runs it instead.
    if (ssld::test::read_file(entry.path()).find("\n[mine]") != std::string::npos) continue;
    const RunResult result = ssld_run({"check", entry.path().string(), "--set", "run.device=cpu"});
    EXPECT_EQ(result.exit_code, 0) << entry.path() << "\n" << result.err;
  }
}

// --- broken plugins ---

TEST(CliPluginErrors, MissingEntryPoint) {
  expect_user_error(plugins_with("no_entry_point"), "is not an ssld plugin: it does not export ssld_plugin_info_v1");
}

TEST(CliPluginErrors, AbiMajorMismatch) {
  const RunResult result = plugins_with("abi_major_mismatch");
  expect_user_error(result, "plugin 'abi_major_mismatch' 9.9.9");
  EXPECT_NE(result.err.find("was built for ssld SDK ABI " + abi_version(SSLD_ABI_MAJOR + 1, SSLD_ABI_MINOR) + ", but this ssld speaks ABI " +
                            abi_version(SSLD_ABI_MAJOR, SSLD_ABI_MINOR)), std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find("libssld_test_abi_major_mismatch.so"), std::string::npos) << result.err;
}

TEST(CliPluginErrors, PluginBuiltForNewerMinor) {
  expect_user_error(plugins_with("abi_newer_minor"), "was built against a newer ssld SDK (ABI " + abi_version(SSLD_ABI_MAJOR, SSLD_ABI_MINOR + 1) +
                                                         ") than this ssld supports (ABI " + abi_version(SSLD_ABI_MAJOR, SSLD_ABI_MINOR) + ")");
}

TEST(CliPluginErrors, FingerprintMismatchNamesBothBuilds) {
  const RunResult result = plugins_with("fingerprint_mismatch");
  expect_user_error(result, "was built with libtorch 0.4.1");
  EXPECT_NE(result.err.find("but this ssld was built with libtorch " ), std::string::npos) << result.err;
}

TEST(CliPluginErrors, HandshakeWithoutRegisterEntry) {
  expect_user_error(plugins_with("no_register_entry"), "does not export ssld_plugin_register_v1");
}

TEST(CliPluginErrors, NotASharedLibrary) {
  TempDir dir;
  const auto fake = dir.write("libfake.so", std::string(200, '#') + "\nthis is text, not an ELF shared library\n");
  const RunResult result = ssld_run({"plugins"}, fake.string());
  expect_user_error(result, "cannot load plugin " + fake.string());
  EXPECT_NE(result.err.find("invalid ELF header"), std::string::npos) << result.err;
}

TEST(CliPluginErrors, RegistrationThrows) {
  expect_user_error(plugins_with("registration_throws"),
                    "failed while registering its components: cannot find my model zoo index (simulated failure)");
}

TEST(CliPluginErrors, SameKindAndNameTwiceNamesBothFiles) {
  const RunResult result =
      ssld_run({"plugins"}, kTestPlugins + "/twin_a:" + kTestPlugins + "/twin_b");
  expect_user_error(result, "student 'twin' is registered twice: first by ");
  EXPECT_NE(result.err.find("twin_a/libssld_test_twin_a.so (plugin twin_a 1.0.0), again by "), std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find("twin_b/libssld_test_twin_b.so (plugin twin_b 1.0.0)"), std::string::npos) << result.err;
}

TEST(CliPluginErrors, MissingPluginPathEntry) {
  expect_user_error(ssld_run({"plugins"}, "/does/not/exist"), "plugin path '/does/not/exist' does not exist");
}

TEST(CliPluginErrors, FactoryExceptionIsReportedWithTheComponent) {
  TempDir dir;
  const auto config = dir.write("c.toml", "[student]\ntype = \"twin\"\nfail = true\n");
  const RunResult result = ssld_run({"check", config.string()}, kTestPlugins + "/twin_a");
  expect_user_error(result, "c.toml:1:1: cannot create student 'twin' (from ");
  EXPECT_NE(result.err.find("c.toml:3:8 (student 'twin', option 'fail'): asked to fail"), std::string::npos)
      << result.err;
}

// --- config mistakes ---

TEST(CliConfigErrors, UnknownComponentListsAvailableAndSuggests) {
  TempDir dir;
  const auto config = dir.write("c.toml", "[student]\ntype = \"smal_cnn\"\n");
  expect_user_error(ssld_run({"check", config.string()}),
                    "c.toml:2:8: unknown student 'smal_cnn' in student; did you mean 'small_cnn'? Available students: cifar_resnet, mobilenet_v3, resnet, resnet_d, small_cnn, torchscript.");
}

TEST(CliConfigErrors, UnknownOptionKeySuggestsWithFileAndLine) {
  TempDir dir;
  const auto config = dir.write("c.toml", "[student]\ntype = \"small_cnn\"\nwidht = 8\n");
  expect_user_error(ssld_run({"check", config.string()}),
                    "c.toml:3:9: unknown option 'widht' for student 'small_cnn'; did you mean 'width'?");
}

TEST(CliConfigErrors, WrongOptionType) {
  TempDir dir;
  const auto config = dir.write("c.toml", "[student]\ntype = \"small_cnn\"\nwidth = \"wide\"\n");
  expect_user_error(ssld_run({"check", config.string()}),
                    "c.toml:3:9: option 'width' of student 'small_cnn': must be an int, found string \"wide\"");
}

TEST(CliConfigErrors, OverrideIsTypeCheckedAgainstTheSchema) {
  TempDir dir;
  const auto config = dir.write("c.toml", kValidConfig);
  expect_user_error(ssld_run({"check", config.string(), "--set", "student.depth=deep"}),
                    "--set student.depth=deep: option 'depth' of student 'small_cnn': 'deep' is not an int");
  EXPECT_EQ(ssld_run({"check", config.string(), "--set", "student.depth=3"}).exit_code, 0);
}

TEST(CliConfigErrors, MissingRequiredOption) {
  TempDir dir;
  const auto config = dir.write("c.toml", "[student]\nwidth = 8\n");
  expect_user_error(ssld_run({"check", config.string()}), "c.toml:1:1: student needs `type = \"<student name>\"`");
}

TEST(CliConfigErrors, MalformedToml) {
  TempDir dir;
  const auto config = dir.write("c.toml", "[student]\ntype = \"small_cnn\nwidth = 8\n");
  expect_user_error(ssld_run({"check", config.string()}), "c.toml:2:");
  EXPECT_NE(ssld_run({"check", config.string()}).err.find("malformed TOML"), std::string::npos);
}

// A launcher learns why a command failed from --failure-file, not from the stderr text; a
// command that succeeds writes nothing there.
TEST(CliConfigErrors, AFailureFileHoldsTheExitStatusAndTheMessage) {
  TempDir dir;
  const auto config = dir.write("c.toml", "[student]\ntype = \"small_cnn\"\nwidht = 8\n");
  const auto failure = dir / "failure.json";
  const RunResult failed = ssld_run({"--failure-file", failure.string(), "check", config.string()});
  expect_user_error(failed, "did you mean 'width'?");
  const auto written = nlohmann::json::parse(ssld::test::read_file(failure));
  EXPECT_EQ(written.at("exit_status"), 2);
  EXPECT_EQ("ssld: error: " + written.at("error").get<std::string>() + "\n", failed.err);
  std::filesystem::remove(failure);
  const auto valid = dir.write("v.toml", kValidConfig);
  EXPECT_EQ(ssld_run({"--failure-file", failure.string(), "check", valid.string()}).exit_code, 0);
  EXPECT_FALSE(std::filesystem::exists(failure));
}

TEST(CliConfigErrors, BaseCycle) {
  TempDir dir;
  dir.write("a.toml", "base = \"b.toml\"\n");
  dir.write("b.toml", "base = \"a.toml\"\n");
  expect_user_error(ssld_run({"check", (dir / "a.toml").string()}), "`base` cycle: a.toml -> b.toml -> a.toml");
}

TEST(CliConfigErrors, HostTablesAreValidatedLikeComponentsAndAllProblemsComeAtOnce) {
  TempDir dir;
  const auto config = dir.write("c.toml",
                                "[run]\nseeed = 1\ndevice = \"tpu\"\n[studnt]\ntype = \"x\"\n"
                                "[student]\ntype = \"small_cnn\"\nwidth = -1\n");
  const RunResult result = ssld_run({"check", config.string()});
  expect_user_error(result, "4 problems in the config:");
  EXPECT_NE(result.err.find("c.toml:2:9: unknown option 'seeed' for [run]; did you mean 'seed'?"), std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find("c.toml:3:10: device 'tpu' is not one of auto, cpu, cuda, cuda:N"), std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find("unknown top-level key 'studnt'; did you mean 'student'?"), std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find("width must be positive, got -1"), std::string::npos) << result.err;
}

TEST(CliConfigErrors, ABadHostTableDoesNotHideTheOtherProblems) {
  TempDir dir;
  const auto config = dir.write("c.toml", std::string(kValidConfig) + "[train]\nlr = nan\n[data]\nprefetch = 0\n");
  const RunResult result = ssld_run({"check", config.string(), "--set", "student.width=abc"});
  expect_user_error(result, "3 problems in the config:");
  EXPECT_NE(result.err.find("option 'lr' of [train]: must be a finite number, found nan"), std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find("[data] prefetch: must lie in [1, 1024]"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("'abc' is not an int"), std::string::npos) << result.err;
}

TEST(CliConfigErrors, LossThatNeedsATeacherWithoutOne) {
  TempDir dir;
  const auto config = dir.write("c.toml", std::string(kValidConfig) + "[[loss]]\ntype = \"ssld\"\n");
  expect_user_error(ssld_run({"check", config.string()}), "this loss learns from a teacher, but the config has no [teacher] table");
}

TEST(CliConfigErrors, PluginPathsInTheConfigResolveAgainstIt) {
  TempDir dir;
  const std::string relative =
      std::filesystem::relative(kTestPlugins + "/twin_a", dir.path()).string();
  const auto config = dir.write("c.toml", "[plugins]\npaths = [\"" + relative + "\"]\n[student]\ntype = \"twin\"\n");
  const RunResult result = ssld_run({"check", config.string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
}

// Every shipped config that trains (has [[loss]] or [[stage]]s) passes `check --dry-run` and
// `train --dry-run`: its tables fit their plugins' schemas, and every stage builds and trains a
// few steps on generated images without the config's data or teacher files. Every sweep lists
// its runs.
TEST(ShippedConfigs, EveryTrainingConfigPassesADryRun) {
  int checked = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(std::string(SSLD_SOURCE_DIR) + "/configs")) {
    if (entry.path().extension() != ".toml") continue;
    const std::string text = ssld::test::read_file(entry.path());
    const std::string config = entry.path().string();
    if (text.find("[sweep]") != std::string::npos) {  // its runs resolve (listing them checks every axis)
      const RunResult listed = ssld_run({"-q", "sweep", config, "--dry-run"});
      EXPECT_EQ(listed.exit_code, 0) << config << "\n" << listed.err;
      EXPECT_NE(listed.out.find("dry run: nothing was run"), std::string::npos) << config << "\n" << listed.out;
    }
    if (text.find("[[loss]]") == std::string::npos && text.find("[[stage]]") == std::string::npos) continue;
    const RunResult check = ssld_run({"-q", "check", config, "--dry-run"});
    EXPECT_EQ(check.exit_code, 0) << config << "\n" << check.err;
    const RunResult train = ssld_run({"-q", "train", config, "--dry-run", "--dry-run-size", "48"});
    EXPECT_EQ(train.exit_code, 0) << config << "\n" << train.err;
    EXPECT_NE(train.out.find("dry run passed"), std::string::npos) << config << "\n" << train.out;
    ++checked;
  }
  EXPECT_GE(checked, 3) << "the quickstart and the two ImageNet recipes";
}

TEST(ShippedConfigs, ADryRunStillReportsConfigMistakes) {
  TempDir dir;
  const auto config = dir.write(
      "c.toml", std::string(kValidConfig) +
                    "[[loss]]\ntype = \"ce\"\n[data.train]\nbatch_size = 8\n[[data.train.sources]]\ntype = \"idx\"\n"
                    "imagez = \"x.gz\"\n[teacher]\ntype = \"torchscript\"\npathh = \"t.pt\"\n");
  const RunResult result = ssld_run({"train", config.string(), "--dry-run"});
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_NE(result.err.find("unknown option 'imagez' for dataset 'idx'; did you mean 'images'?"), std::string::npos)
      << result.err;
  EXPECT_NE(result.err.find("unknown option 'pathh' for teacher 'torchscript'; did you mean 'path'?"), std::string::npos)
      << result.err;
}
