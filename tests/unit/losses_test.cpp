// Every loss against python3-torch reference values (tests/unit/fixtures/loss_reference.py,
// written after the papers' code), plus the properties SSLD relies on.
#include "plugin_host.hpp"

#include <ssld/loss.hpp>

#include <ATen/TensorOperators.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/tensor.h>

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>

using ssld::test::PluginHost;

namespace {

constexpr int64_t N = 6, C = 5;

at::Tensor formula_logits(double scale, double a, double b, double c0, bool cosine) {
  at::Tensor logits = at::empty({N, C}, at::kFloat);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t c = 0; c < C; ++c) {
      const double x = a * i + b * c + c0;
      logits[i][c] = scale * (cosine ? std::cos(x) : std::sin(x));
    }
  return logits;
}

const at::Tensor kStudent = formula_logits(2.5, 0.7, 1.3, 0.1, false);
const at::Tensor kTeacher = formula_logits(3.0, 0.4, -0.9, 0.2, true);
const at::Tensor kLabels = at::tensor(std::vector<int64_t>{1, -1, 3, 0, -1, 4});

const nlohmann::json& reference() {
  static const nlohmann::json values = [] {
    FILE* pipe = popen("/usr/bin/python3 " SSLD_SOURCE_DIR "/tests/unit/fixtures/loss_reference.py", "r");
    std::string out;
    char buffer[4096];
    while (pipe && fgets(buffer, sizeof(buffer), pipe)) out += buffer;
    if (pipe) pclose(pipe);
    return nlohmann::json::parse(out);
  }();
  return values;
}

ssld::LossOutput evaluate(ssld::Loss& loss, const at::Tensor& student, const at::Tensor& teacher,
                          const at::Tensor& labels, at::Tensor mix_index = {}, at::Tensor mix_lambda = {}) {
  const ssld::ModelOutput s{student, {}}, t{teacher, {}};
  const at::Tensor mask = labels >= 0;
  return loss.compute(ssld::LossInputs{s, &t, labels, mask, mix_index, mix_lambda});
}

double value(PluginHost& host, const std::string& table) {
  auto loss = host.component<ssld::Loss>(table);
  return evaluate(*loss, kStudent, kTeacher, kLabels).value.item<double>();
}

}  // namespace

TEST(Losses, MatchPythonReferences) {
  PluginHost host;
  const auto& ref = reference();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"ssld", "type = \"ssld\""},
      {"ssld_t2", "type = \"ssld\"\ntemperature = 2.0"},
      {"jsd", "type = \"jsd\""},
      {"kl", "type = \"kl\""},
      {"kl_t2", "type = \"kl\"\ntemperature = 2.0"},
      {"dkd", "type = \"dkd\""},
      {"dkd_a2b4t2", "type = \"dkd\"\nalpha = 2.0\nbeta = 4.0\ntemperature = 2.0"},
      {"dist", "type = \"dist\""},
      {"dist_b2g3t4", "type = \"dist\"\nbeta = 2.0\ngamma = 3.0\ntemperature = 4.0"},
      {"ce", "type = \"ce\"\nlabel_smoothing = 0.1"},
      {"ce_plain", "type = \"ce\""},
  };
  for (const auto& [name, table] : cases) {
    const double expected = ref.at(name).get<double>();
    EXPECT_NEAR(value(host, table), expected, 1e-5 * std::max(1.0, std::abs(expected))) << name;
  }
}

TEST(Losses, SsldIsZeroForIdenticalPredictionsAndNeverReadsLabels) {
  PluginHost host;
  auto loss = host.component<ssld::Loss>("type = \"ssld\"");
  EXPECT_FALSE(loss->uses_labels());
  EXPECT_TRUE(loss->needs_teacher());
  EXPECT_NEAR(evaluate(*loss, kTeacher, kTeacher, kLabels).value.item<double>(), 0.0, 1e-7);
  const double with_labels = evaluate(*loss, kStudent, kTeacher, kLabels).value.item<double>();
  const at::Tensor garbage = at::tensor(std::vector<int64_t>{999, 7, -5, 123456, 2, 1});
  EXPECT_EQ(evaluate(*loss, kStudent, kTeacher, garbage).value.item<double>(), with_labels);
  EXPECT_EQ(evaluate(*loss, kStudent, kTeacher, at::full({N}, -1, at::kLong)).value.item<double>(), with_labels);
}

TEST(Losses, GradientsReachTheStudentOnly) {
  PluginHost host;
  for (const std::string type : {"ssld", "jsd", "kl", "dkd", "dist"}) {
    auto loss = host.component<ssld::Loss>("type = \"" + type + "\"");
    const at::Tensor student = kStudent.clone().set_requires_grad(true);
    const at::Tensor teacher = kTeacher.clone().set_requires_grad(true);
    evaluate(*loss, student, teacher, kLabels).value.backward();
    EXPECT_TRUE(student.grad().defined()) << type;
    EXPECT_GT(student.grad().abs().sum().item<double>(), 0.0) << type;
    EXPECT_FALSE(teacher.grad().defined()) << type << " sent gradients into the teacher";
  }
}

TEST(Losses, CrossEntropyIgnoresUnlabeledAndMixesLabelsWithMixup) {
  PluginHost host;
  auto ce = host.component<ssld::Loss>("type = \"ce\"");
  EXPECT_EQ(evaluate(*ce, kStudent, kTeacher, at::full({N}, -1, at::kLong)).value.item<double>(), 0.0);
  const at::Tensor labels = at::tensor(std::vector<int64_t>{1, 2, 3, 0, 4, 4});
  const at::Tensor index = at::tensor(std::vector<int64_t>{5, 4, 3, 2, 1, 0});
  const at::Tensor lambda = at::full({N}, 0.7, at::kFloat);
  const double mixed = evaluate(*ce, kStudent, kTeacher, labels, index, lambda).value.item<double>();
  const at::Tensor log_p = kStudent.log_softmax(1);
  double expected = 0;
  for (int64_t i = 0; i < N; ++i)
    expected -= 0.7 * log_p[i][labels[i].item<int64_t>()].item<double>() +
                0.3 * log_p[i][labels[5 - i].item<int64_t>()].item<double>();
  EXPECT_NEAR(mixed, expected / N, 1e-5);
}

TEST(Losses, MismatchedClassCountsAreAnError) {
  PluginHost host;
  auto loss = host.component<ssld::Loss>("type = \"kl\"");
  EXPECT_THROW(evaluate(*loss, kStudent, kTeacher.slice(1, 0, 4), kLabels), ssld::Error);
}
