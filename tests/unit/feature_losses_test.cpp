// Feature distillation: every built-in model shows its features by name with the shapes a
// PyTorch user expects, and every feature loss (plugins/losses/feature/) matches an independent
// python3-torch implementation written from its paper (tests/unit/fixtures/feature_loss_reference.py)
// on the same tensors: the value, the student features' gradients and the connector's gradients
// within 1e-5.
#include "plugin_host.hpp"
#include "weights/torch_file.hpp"

#include <ssld/loss.hpp>

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

using ssld::test::PluginHost;
using ssld::test::TempDir;

namespace {

constexpr int64_t kDatasetSize = 100;  // what the losses are told the training set holds

struct Case {
  std::string type, options;  // the [[loss]] table's keys besides type, student, teacher
  nlohmann::json reference_options;
  std::vector<std::vector<int64_t>> student, teacher;  // shapes of each pair
};

std::string toml_list(size_t n, const char* prefix) {
  std::string text = "[";
  for (size_t i = 0; i < n; ++i) text += std::string(i ? ", " : "") + "\"" + prefix + std::to_string(i) + "\"";
  return text + "]";
}

at::Tensor tensor_named(const ssld::NamedTensors& tensors, const std::string& name) {
  for (const auto& [key, tensor] : tensors)
    if (key == name) return tensor;
  ADD_FAILURE() << "no tensor " << name;
  return {};
}

void expect_close(const at::Tensor& got, const at::Tensor& want, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what;
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  const double error = (got.to(at::kDouble) - want.to(at::kDouble)).abs().max().item<double>();
  const double scale = std::max(1.0, want.abs().max().item<double>());
  EXPECT_LE(error, 1e-5 * scale) << what << ": max abs difference " << error;
}

void check_against_python(PluginHost& host, const Case& c) {
  SCOPED_TRACE(c.type + " " + c.options);
  const size_t pairs = c.student.size();
  auto loss = host.component<ssld::Loss>("type = \"" + c.type + "\"\nstudent = " + toml_list(pairs, "s") +
                                         "\nteacher = " + toml_list(pairs, "t") + "\n" + c.options);
  ASSERT_TRUE(loss);
  ssld::FeatureShapes student_shapes, teacher_shapes;
  for (size_t i = 0; i < pairs; ++i) {
    student_shapes["s" + std::to_string(i)] = c.student[i];
    teacher_shapes["t" + std::to_string(i)] = c.teacher[i];
  }
  at::manual_seed(3);
  loss->prepare(student_shapes, teacher_shapes, kDatasetSize);
  loss->train(true);

  ssld::ModelOutput student{at::zeros({c.student[0][0], 10}), {}}, teacher{at::zeros({c.teacher[0][0], 10}), {}};
  ssld::NamedTensors inputs;
  std::vector<at::Tensor> student_features;
  for (size_t i = 0; i < pairs; ++i) {
    const at::Tensor s = at::randn(c.student[i]).requires_grad_(true), t = at::randn(c.teacher[i]);
    student.features["s" + std::to_string(i)] = s;
    teacher.features["t" + std::to_string(i)] = t;
    student_features.push_back(s);
    inputs.emplace_back("s." + std::to_string(i), s.detach());
    inputs.emplace_back("t." + std::to_string(i), t);
  }
  for (const auto& [name, tensor] : loss->named_parameters()) inputs.emplace_back("param." + name, tensor.detach().clone());
  for (const auto& [name, tensor] : loss->named_buffers()) inputs.emplace_back("buffer." + name, tensor.clone());
  const int64_t batch = c.student[0][0];
  const at::Tensor ids = (at::arange(batch, at::kLong) * 37 + 5) % kDatasetSize;  // rows of a memory over the set
  inputs.emplace_back("ids", ids);

  const at::Tensor labels = at::full({batch}, -1, at::kLong), mask = labels >= 0, none;
  const ssld::LossOutput output = loss->compute(ssld::LossInputs{student, &teacher, labels, mask, none, none, &ids});
  output.value.backward();

  TempDir dir;
  const std::string in = (dir / "in.pth").string(), out = (dir / "out.pth").string();
  ssld::host::write_torch_file(in, inputs);
  nlohmann::json options = c.reference_options;
  const auto run = ssld::test::run_program(
      "/usr/bin/python3", {SSLD_SOURCE_DIR "/tests/unit/fixtures/feature_loss_reference.py", c.type, options.dump(), in, out});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const ssld::NamedTensors reference = ssld::host::read_torch_file(out);
  expect_close(output.value.detach(), tensor_named(reference, "value"), "value");
  for (size_t i = 0; i < pairs; ++i)
    expect_close(student_features[i].grad(), tensor_named(reference, "grad.s." + std::to_string(i)),
                 "gradient of student feature " + std::to_string(i));
  const ssld::NamedTensors parameters = loss->named_parameters();
  for (const auto& [name, parameter] : parameters)
    expect_close(parameter.grad(), tensor_named(reference, "grad.param." + name), "gradient of " + name);
  if (c.type == "fitnet" || c.type == "vid" || c.options.find("connector = true") != std::string::npos)
    EXPECT_FALSE(parameters.empty()) << "a trainable connector";
  // The state the loss updates in its step (CRD's memories and draw count, OFD's margins).
  const ssld::NamedTensors buffers = loss->named_buffers();
  for (const auto& [name, tensor] : reference)
    if (name.rfind("buffer.", 0) == 0) expect_close(tensor_named(buffers, name.substr(7)), tensor, name);
}

}  // namespace

TEST(FeatureLosses, MatchIndependentPythonImplementationsWithTheirGradients) {
  PluginHost host;
  const std::vector<int64_t> map_s = {4, 6, 4, 4}, map_t = {4, 8, 8, 8}, same_t = {4, 8, 4, 4};
  const std::vector<Case> cases = {
      // FitNet: channels 6 -> 8 through a conv + BN, the student's 4x4 map interpolated to 8x8;
      // and a vector pair through a Linear.
      {"fitnet", "factor = 1.0", {{"factor", 1.0}}, {map_s, {4, 5}}, {map_t, {4, 7}}},
      {"at", "factor = 1.0", {{"factor", 1.0}, {"p", 2.0}}, {map_s, {4, 3, 8, 8}}, {map_t, {4, 5, 4, 4}}},
      {"at", "factor = 1.0\np = 3.0", {{"factor", 1.0}, {"p", 3.0}}, {map_s}, {same_t}},
      {"sp", "factor = 1.0", {{"factor", 1.0}}, {map_s, {4, 5}}, {map_t, {4, 9}}},
      {"pkt", "factor = 1.0", {{"factor", 1.0}, {"eps", 1e-7}}, {{4, 5}}, {{4, 9}}},
      {"rkd", "", {{"factor", 1.0}, {"distance_weight", 25.0}, {"angle_weight", 50.0}}, {{5, 6}}, {{5, 3}}},
      {"rkd", "angle_weight = 0.0", {{"factor", 1.0}, {"distance_weight", 25.0}, {"angle_weight", 0.0}}, {{5, 6}}, {{5, 3}}},
      {"nst", "factor = 1.0", {{"factor", 1.0}}, {map_s, map_s}, {same_t, map_t}},
      {"vid", "", {{"factor", 1.0}, {"eps", 1e-5}}, {map_s}, {map_t}},
      // The automatic connector in front of a parameter-free loss.
      {"at", "factor = 1.0\nconnector = true", {{"factor", 1.0}, {"p", 2.0}, {"connector", true}}, {map_s, {4, 3, 8, 8}},
       {map_t, {4, 5, 4, 4}}},
      {"ofd", "factor = 1.0", {{"factor", 1.0}}, {map_s, map_s}, {map_t, same_t}},
      {"crd", "factor = 1.0\nfeat_dim = 8\nnce_k = 20",
       {{"factor", 1.0}, {"nce_k", 20}, {"nce_t", 0.07}, {"nce_m", 0.5}, {"seed", 0}}, {map_s}, {{4, 9}}},
      // Three depths: a vector (the pooled pre-logits), a 4x4 and an 8x8 map.
      {"reviewkd", "factor = 1.0\nmid_channels = 5",
       {{"factor", 1.0}}, {{4, 6, 8, 8}, map_s, {4, 6}}, {{4, 3, 8, 8}, map_t, {4, 7}}},
      {"reviewkd", "factor = 2.0", {{"factor", 2.0}}, {map_s, {4, 6, 2, 2}}, {same_t, {4, 3, 2, 2}}},
  };
  for (const auto& c : cases) check_against_python(host, c);
}

TEST(FeatureLosses, ShapesThatCannotBeComparedAreRefusedNamingBoth) {
  PluginHost host;
  auto loss = host.component<ssld::Loss>("type = \"fitnet\"\nstudent = [\"avgpool\"]\nteacher = [\"layer3\"]");
  const std::string error = ssld::test::error_of([&] {
    loss->prepare({{"avgpool", {2, 64}}}, {{"layer3", {2, 128, 7, 7}}}, 10);
  });
  EXPECT_NE(error.find("student feature 'avgpool' [2, 64] and teacher feature 'layer3' [2, 128, 7, 7]"),
            std::string::npos) << error;
  const std::string mismatch = ssld::test::error_of([&] {
    host.component<ssld::Loss>("type = \"at\"\nstudent = [\"a\", \"b\"]\nteacher = [\"c\"]");
  });
  EXPECT_NE(mismatch.find("one teacher feature per student feature"), std::string::npos) << mismatch;
}

TEST(ModelFeatures, EveryBuiltinModelShowsItsFeaturesWithTheirShapes) {
  PluginHost host;
  struct Expected {
    std::string table;
    std::vector<int64_t> input;
    std::map<std::string, std::vector<int64_t>> shapes;  // some of its features
  };
  const std::vector<Expected> models = {
      {"type = \"small_cnn\"\nwidth = 8\ndepth = 2", {2, 1, 28, 28},
       {{"features.4", {2, 8, 28, 28}}, {"features.6", {2, 8, 14, 14}}, {"features.13", {2, 16, 7, 7}}, {"avgpool", {2, 16}}}},
      {"type = \"cifar_resnet\"\ndepth = 8\nwidth = 4\nin_channels = 1", {2, 1, 28, 28},
       {{"relu", {2, 4, 28, 28}}, {"layer2", {2, 8, 14, 14}}, {"layer3.pre_relu", {2, 16, 7, 7}}, {"avgpool", {2, 16}}}},
      {"type = \"resnet\"\ndepth = 18\nnum_classes = 10", {2, 3, 64, 64},
       {{"maxpool", {2, 64, 16, 16}}, {"layer1", {2, 64, 16, 16}}, {"layer4.pre_relu", {2, 512, 2, 2}}, {"avgpool", {2, 512}}}},
      {"type = \"resnet_d\"\ndepth = 50\nnum_classes = 10", {2, 3, 64, 64},
       {{"layer3", {2, 1024, 4, 4}}, {"avgpool", {2, 2048}}}},
      {"type = \"mobilenet_v3\"\nvariant = \"small\"\nnum_classes = 10", {2, 3, 64, 64},
       {{"features.0", {2, 16, 32, 32}}, {"features.12", {2, 576, 2, 2}}, {"avgpool", {2, 576}}}},
  };
  for (const auto& model : models) {
    SCOPED_TRACE(model.table);
    auto student = host.component<ssld::Student>(model.table);
    ASSERT_TRUE(student);
    std::vector<std::string> wanted;
    for (const auto& [name, shape] : model.shapes) wanted.push_back(name);
    const auto names = student->feature_names();
    for (const auto& name : wanted) EXPECT_NE(std::find(names.begin(), names.end(), name), names.end()) << name;
    student->train(false);
    const at::Tensor images = at::randn(model.input);
    const ssld::ModelOutput plain = student->forward(images, {});
    const ssld::ModelOutput with = student->forward(images, wanted);
    EXPECT_TRUE(plain.features.empty());
    EXPECT_TRUE(with.logits.equal(plain.logits)) << "asking for features does not change the logits";
    for (const auto& [name, shape] : model.shapes) {
      ASSERT_TRUE(with.features.count(name)) << name;
      EXPECT_EQ(with.features.at(name).sizes().vec(), shape) << name;
    }
    const std::string unknown = ssld::test::error_of([&] { student->forward(images, {"layer9"}); });
    EXPECT_NE(unknown.find("no feature 'layer9'"), std::string::npos) << unknown;
  }
}
