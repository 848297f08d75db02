#include "plugin/component_registry.hpp"

#include <gtest/gtest.h>

using namespace ssld::host;
using ssld::ComponentInfo;
using ssld::Kind;
using ssld::Schema;

namespace {
ssld::Factory no_factory() {
  return [](const ssld::Options&, const ssld::Context&) { return ssld::FactoryResult{nullptr, "unused"}; };
}
}  // namespace

TEST(ComponentRegistry, DuplicateNamesBothPlugins) {
  ComponentRegistry registry;
  PluginRecord a{"/p/liba.so", "a", "1.0", 1, 0};
  PluginRecord b{"/p/libb.so", "b", "2.0", 1, 0};
  registry.begin_plugin(&a);
  registry.add(ComponentInfo{Kind::Student, "twin", "doc", Schema()}, no_factory());
  registry.begin_plugin(&b);
  registry.add(ComponentInfo{Kind::Student, "twin", "doc", Schema()}, no_factory());
  registry.add(ComponentInfo{Kind::Teacher, "twin", "doc", Schema()}, no_factory());  // other kind: fine
  const auto problems = registry.take_problems();
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("student 'twin' is registered twice: first by /p/liba.so (plugin a 1.0), again by "
                             "/p/libb.so (plugin b 2.0)"),
            std::string::npos)
      << problems[0];
  EXPECT_EQ(registry.find(Kind::Student, "twin")->plugin, &a);
  EXPECT_EQ(registry.names(Kind::Teacher), std::vector<std::string>{"twin"});
}

TEST(ComponentRegistry, RefusesMalformedNamesAndSchemas) {
  ComponentRegistry registry;
  registry.add(ComponentInfo{Kind::Loss, "Bad Name", "doc", Schema()}, no_factory());
  registry.add(ComponentInfo{Kind::Loss, "twice", "doc", Schema().add_int("x", 1, "").add_float("x", 1, "")},
               no_factory());
  registry.add(ComponentInfo{Kind::Loss, "typed", "doc", Schema().add_int("type", 1, "")}, no_factory());
  registry.add(ComponentInfo{Kind::Loss, "choice", "doc", Schema().add_string("p", "fp64", "", {"fp32"})},
               no_factory());
  const auto problems = registry.take_problems();
  ASSERT_EQ(problems.size(), 4u);
  EXPECT_NE(problems[0].find("names are lower_snake_case"), std::string::npos);
  EXPECT_NE(problems[1].find("option 'x' is declared twice"), std::string::npos);
  EXPECT_NE(problems[2].find("'type' is reserved"), std::string::npos);
  EXPECT_NE(problems[3].find("default 'fp64' of option 'p' is not among its choices"), std::string::npos);
  EXPECT_TRUE(registry.all().empty());
}
