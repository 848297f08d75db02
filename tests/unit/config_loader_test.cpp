#include "config/config_loader.hpp"
#include "config/diagnostics.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

using namespace ssld::host;
using ssld::test::TempDir;
using ssld::test::error_of;

TEST(ConfigLoader, BaseIsMergedTableByTableAndTheIncludingFileWins) {
  TempDir dir;
  dir.write("common/base.toml", "[run]\nname = \"base\"\nseed = 7\n[student]\ntype = \"small_cnn\"\nwidth = 16\n");
  const auto path = dir.write("exp/child.toml", "base = \"../common/base.toml\"\n[student]\nwidth = 64\n");
  const TomlValue root = load_config(path);
  EXPECT_FALSE(root.contains("base"));
  EXPECT_EQ(root.at("run").at("name").as_string().str, "base");
  EXPECT_EQ(root.at("run").at("seed").as_integer(), 7);
  EXPECT_EQ(root.at("student").at("type").as_string().str, "small_cnn");
  EXPECT_EQ(root.at("student").at("width").as_integer(), 64);
  // Values remember the file that set them, for diagnostics and relative paths.
  EXPECT_NE(root.at("student").at("type").location().file_name().find("base.toml"), std::string::npos);
  EXPECT_NE(root.at("student").at("width").location().file_name().find("child.toml"), std::string::npos);
}

TEST(ConfigLoader, ListOfBasesAppliesInOrder) {
  TempDir dir;
  dir.write("a.toml", "[run]\nname = \"a\"\nseed = 1\n");
  dir.write("b.toml", "[run]\nname = \"b\"\n");
  const auto path = dir.write("c.toml", "base = [\"a.toml\", \"b.toml\"]\n");
  const TomlValue root = load_config(path);
  EXPECT_EQ(root.at("run").at("name").as_string().str, "b");
  EXPECT_EQ(root.at("run").at("seed").as_integer(), 1);
}

TEST(ConfigLoader, BaseCycleIsAnErrorNamingTheChain) {
  TempDir dir;
  dir.write("a.toml", "base = \"b.toml\"\n");
  dir.write("b.toml", "base = \"a.toml\"\n");
  const std::string message = error_of<ConfigError>([&] { load_config(dir / "a.toml"); });
  EXPECT_NE(message.find("`base` cycle: a.toml -> b.toml -> a.toml"), std::string::npos) << message;
  EXPECT_NE(message.find("b.toml:1:8"), std::string::npos) << message;
}

TEST(ConfigLoader, MissingBaseNamesTheIncludingLine) {
  TempDir dir;
  const auto path = dir.write("a.toml", "\nbase = \"nope.toml\"\n");
  const std::string message = error_of<ConfigError>([&] { load_config(path); });
  EXPECT_NE(message.find("a.toml:2:8"), std::string::npos) << message;
  EXPECT_NE(message.find("nope.toml' does not exist"), std::string::npos) << message;
}

TEST(ConfigLoader, MalformedTomlGivesFileLineAndColumn) {
  TempDir dir;
  const auto path = dir.write("bad.toml", "[run]\nname = \"x\"\nseed = [1, 2\n");
  const std::string message = error_of<ConfigError>([&] { load_config(path); });
  EXPECT_NE(message.find("bad.toml:4:1: malformed TOML"), std::string::npos) << message;
}

TEST(ConfigLoader, OverridesKeepTheirTextUntilValidationAndIndexLists) {
  TempDir dir;
  const auto path = dir.write("a.toml", "[[loss]]\ntype = \"ssld\"\n[[loss]]\ntype = \"kl\"\n");
  const TomlValue root = load_config(path, {"student.width=64", "loss.1.type=dkd", "run.name=with spaces = ok"});
  const TomlValue& width = root.at("student").at("width");
  ASSERT_TRUE(is_override_text(width));
  TomlValue parsed;
  ASSERT_TRUE(parse_override_text(width, parsed));
  EXPECT_EQ(parsed.as_integer(), 64);
  EXPECT_EQ(root.at("loss").as_array()[1].at("type").as_string().str, "dkd");
  EXPECT_EQ(root.at("run").at("name").as_string().str, "with spaces = ok");
  // Control characters (DEL too, found by the config fuzz target) stay text, escaped for toml11.
  const TomlValue controls = load_config(path, {std::string("run.name=a\x7f\tb\x01")});
  EXPECT_EQ(controls.at("run").at("name").as_string().str, "a\x7f\tb\x01");
}

TEST(ConfigLoader, MalformedOverridesAreErrors) {
  TempDir dir;
  const auto path = dir.write("a.toml", "[[loss]]\ntype = \"ssld\"\n[run]\nname = \"x\"\n");
  EXPECT_NE(error_of<ConfigError>([&] { load_config(path, {"student.width"}); }).find("key.path=value"), std::string::npos);
  EXPECT_NE(error_of<ConfigError>([&] { load_config(path, {"loss.3.type=kl"}); }).find("list of 1 entries"), std::string::npos);
  EXPECT_NE(error_of<ConfigError>([&] { load_config(path, {"run.name.first=x"}); }).find("'run.name' is a string"),
            std::string::npos);
  EXPECT_NE(error_of<ConfigError>([&] { load_config(path, {"teacher.0.type=x"}); }).find("cannot create them"), std::string::npos);
  EXPECT_NE(error_of<ConfigError>([&] { load_config(path, {"base=x.toml"}); }).find("only be set in a config file"),
            std::string::npos);
  // An index beyond any list is "not an index", not std::stoul's out_of_range (exit 1).
  EXPECT_NE(error_of<ConfigError>([&] { load_config(path, {"loss.99999999999999999999.type=kl"}); })
                .find("is not an index into it"),
            std::string::npos);
  EXPECT_NE(error_of<ConfigError>([&] { load_config(path, {"loss.0=kl"}); }).find("not a list entry"), std::string::npos);
  EXPECT_NE(error_of<ConfigError>([&] { load_config(path, {"run..name=x"}); }).find("malformed key path"),
            std::string::npos);
}
