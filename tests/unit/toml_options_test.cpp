#include "config/config_loader.hpp"
#include "config/settings_table.hpp"
#include "config/toml_options.hpp"
#include "train/train_settings.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

using namespace ssld::host;
using ssld::OptionType;
using ssld::Schema;
using ssld::test::TempDir;

namespace {

Schema example_schema() {
  return Schema()
      .add_int("width", 32, "channels")
      .add_float("dropout", 0.0, "dropout")
      .add_string("precision", "fp32", "precision", {"fp32", "bf16", "fp16"})
      .add_path("weights", "", "weights file")
      .add_int_list("milestones", {30, 60}, "epochs")
      .require(OptionType::String, "arch", "architecture")
      .add_table("adapter", Schema().add_int("size", 224, "input size"), "input adapter");
}

std::vector<std::string> problems(const TomlValue& table, const Schema& schema) {
  Diagnostics diagnostics;
  validate_options(table, schema, "student 'x'", {"type"}, diagnostics);
  std::vector<std::string> messages;
  for (const auto& item : diagnostics.items()) messages.push_back(item.place.str() + ": " + item.message);
  return messages;
}

}  // namespace

TEST(OptionValidation, AcceptsAValidTableAndGettersApplyDefaults) {
  TempDir dir;
  const auto path = dir.write("sub/a.toml", "[s]\ntype = \"x\"\narch = \"r50\"\ndropout = 1\nweights = \"w/model.pth\"\n");
  const TomlValue root = load_config(path);
  const auto schema = std::make_shared<const Schema>(example_schema());
  EXPECT_TRUE(problems(root.at("s"), *schema).empty());
  const TomlOptions options(root.at("s"), schema, "student 'x'");
  EXPECT_EQ(options.get_int("width"), 32);
  EXPECT_DOUBLE_EQ(options.get_float("dropout"), 1.0);  // an integer is a valid float
  EXPECT_EQ(options.get_string("precision"), "fp32");
  EXPECT_EQ(options.get_string("arch"), "r50");
  EXPECT_EQ(options.get_int_list("milestones"), (std::vector<int64_t>{30, 60}));
  // Relative paths resolve against the folder of the file that set them.
  EXPECT_EQ(options.get_string("weights"), (dir.path() / "sub/w/model.pth").string());
  EXPECT_EQ(options.get_table("adapter")->get_int("size"), 224);
  EXPECT_NE(options.where("arch").find("a.toml:3:8"), std::string::npos) << options.where("arch");
}

TEST(OptionValidation, ReportsEveryProblemWithItsPlace) {
  TempDir dir;
  const auto path = dir.write("a.toml",
                              "[s]\ntype = \"x\"\nwidht = 3\ndropout = \"high\"\nprecision = \"fp18\"\n"
                              "milestones = [1, \"x\"]\n[s.adapter]\nsise = 3\n");
  const auto messages = problems(load_config(path).at("s"), example_schema());
  ASSERT_EQ(messages.size(), 6u) << ::testing::PrintToString(messages);
  const std::string all = ::testing::PrintToString(messages);
  EXPECT_NE(all.find("a.toml:3:9: unknown option 'widht' for student 'x'; did you mean 'width'?"), std::string::npos) << all;
  EXPECT_NE(all.find("a.toml:4:11: option 'dropout' of student 'x': must be a float, found string \\\"high\\\""),
            std::string::npos) << all;
  EXPECT_NE(all.find("'fp18' is not one of: fp32, bf16, fp16; did you mean 'fp16'?"), std::string::npos) << all;
  EXPECT_NE(all.find("every entry must be a integer"), std::string::npos) << all;
  EXPECT_NE(all.find("unknown option 'sise' for student 'x' (adapter); did you mean 'size'?"), std::string::npos) << all;
  EXPECT_NE(all.find("student 'x' needs option 'arch' (string)"), std::string::npos) << all;
}

TEST(OptionValidation, UnknownKeyWithoutCloseMatchListsTheOptions) {
  TempDir dir;
  const auto path = dir.write("a.toml", "[s]\narch = \"r\"\ncompletely_different = 1\n");
  const auto messages = problems(load_config(path).at("s"), Schema().add_int("width", 1, "w").require(OptionType::String, "arch", "a"));
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_NE(messages[0].find("(its options: type, width, arch)"), std::string::npos) << messages[0];
}

TEST(OptionValidation, OverridesAreReadAsTheDeclaredType) {
  TempDir dir;
  const auto path = dir.write("a.toml", "[s]\narch = \"r50\"\n");
  const TomlValue root = load_config(path, {"s.width=64", "s.arch=123", "s.milestones=[5, 9]", "s.dropout=abc"});
  const auto schema = std::make_shared<const Schema>(example_schema());
  const auto messages = problems(root.at("s"), *schema);
  ASSERT_EQ(messages.size(), 1u) << ::testing::PrintToString(messages);
  EXPECT_NE(messages[0].find("--set s.dropout=abc: option 'dropout' of student 'x': 'abc' is not a float"),
            std::string::npos) << messages[0];
  TomlValue fixed = root;
  fixed.as_table()["s"].as_table().erase("dropout");
  const TomlOptions options(fixed.at("s"), schema, "student 'x'");
  EXPECT_EQ(options.get_int("width"), 64);
  EXPECT_EQ(options.get_string("arch"), "123");  // a string option keeps the text
  EXPECT_EQ(options.get_int_list("milestones"), (std::vector<int64_t>{5, 9}));
}

TEST(OptionValidation, GettersRefuseUndeclaredKeysAndWrongTypes) {
  const auto schema = std::make_shared<const Schema>(example_schema());
  const TomlOptions options(TomlValue(TomlTable{}), schema, "student 'x'");
  EXPECT_THROW(options.get_int("nope"), ssld::Error);
  EXPECT_THROW(options.get_string("width"), ssld::Error);
  EXPECT_FALSE(options.has("arch"));
  EXPECT_THROW(options.get_string("arch"), ssld::Error);  // required, absent: validation's job
}

TEST(DidYouMean, SuggestsOnlyPlausibleTypos) {
  EXPECT_EQ(closest_match("widht", {"width", "depth"}), "width");
  EXPECT_EQ(closest_match("small_cn", {"small_cnn", "resnet18"}), "small_cnn");
  EXPECT_EQ(closest_match("zzzzzz", {"width", "depth"}), "");
}

namespace {
enum class Shape { Round, Square };
struct ExampleSettings {
  int64_t width = 32;
  double dropout = 0.25;
  bool fast = true;
  std::string name = "demo";
  std::string weights;
  std::vector<int64_t> milestones = {30, 60};
  Shape shape = Shape::Square;
};
const EnumNames<Shape> kShapeNames = {{Shape::Round, "round"}, {Shape::Square, "square"}};
SettingsTable<ExampleSettings> example_table() {
  using E = ExampleSettings;
  return SettingsTable<E>()
      .add("width", &E::width, "channels")
      .add("dropout", &E::dropout, "dropout")
      .add("fast", &E::fast, "fast path")
      .add("name", &E::name, "name", {"demo", "other"})
      .add_path("weights", &E::weights, "weights file")
      .add("milestones", &E::milestones, "epochs")
      .add("shape", &E::shape, kShapeNames, "shape");
}
}  // namespace

TEST(SettingsTable, TheSchemaDefaultsAreTheStructsAndTheReaderFillsEveryField) {
  const SettingsTable<ExampleSettings> table = example_table();
  const ExampleSettings defaults;
  const Schema& schema = table.schema();
  ASSERT_EQ(schema.options().size(), 7u);
  EXPECT_EQ(std::get<int64_t>(*schema.find("width")->default_value), defaults.width);
  EXPECT_EQ(std::get<double>(*schema.find("dropout")->default_value), defaults.dropout);
  EXPECT_EQ(std::get<bool>(*schema.find("fast")->default_value), defaults.fast);
  EXPECT_EQ(schema.find("weights")->type, OptionType::Path);
  EXPECT_EQ(schema.find("name")->choices, (std::vector<std::string>{"demo", "other"}));
  // An enumeration is a string with its spellings as the choices, its default spelled.
  EXPECT_EQ(std::get<std::string>(*schema.find("shape")->default_value), "square");
  EXPECT_EQ(schema.find("shape")->choices, (std::vector<std::string>{"round", "square"}));

  TempDir dir;
  const TomlValue root = load_config(dir.write("a.toml", "[s]\nwidth = 8\nshape = \"round\"\nweights = \"w.pt\"\n"));
  EXPECT_TRUE(problems(root.at("s"), schema).empty());
  const ExampleSettings read = table.read(TomlOptions(root.at("s"), std::make_shared<const Schema>(schema), "[s]"));
  EXPECT_EQ(read.width, 8);
  EXPECT_EQ(read.shape, Shape::Round);
  EXPECT_EQ(read.weights, (dir.path() / "w.pt").string());
  EXPECT_EQ(read.dropout, defaults.dropout);  // absent keys: the struct's defaults
  EXPECT_EQ(read.milestones, defaults.milestones);
  EXPECT_EQ(read.name, defaults.name);
  // A spelling outside the choices never reaches the reader (validation reports it first).
  const TomlValue wrong = load_config(dir.write("b.toml", "[s]\nshape = \"oval\"\n"));
  EXPECT_FALSE(problems(wrong.at("s"), schema).empty());
}

TEST(SettingsTable, TrainEnumerationsAreReadOnceIntoEnums) {
  TempDir dir;
  const TomlValue root = load_config(dir.write(
      "t.toml", "[train]\noptimizer = \"adamw\"\nschedule = \"step\"\nmilestones = [1]\nprecision = \"bf16\"\n"));
  Diagnostics diagnostics;
  const TrainSettings settings = read_train_settings(root, diagnostics);
  EXPECT_TRUE(diagnostics.empty());
  EXPECT_EQ(settings.optimizer, OptimizerKind::AdamW);
  EXPECT_EQ(settings.schedule, LrSchedule::Step);
  EXPECT_EQ(settings.precision, Precision::Bf16);
  EXPECT_EQ(settings.betas, (std::vector<double>{0.9, 0.999}));
  EXPECT_STREQ(kPrecisionNames.name(settings.precision), "bf16");
  const TrainSettings defaults = read_train_settings(load_config(dir.write("e.toml", "")), diagnostics);
  EXPECT_EQ(defaults.optimizer, OptimizerKind::Sgd);
  EXPECT_EQ(defaults.schedule, LrSchedule::Cosine);
  EXPECT_EQ(defaults.log_every, TrainSettings{}.log_every);
}
