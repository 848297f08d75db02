// The ImageNet students (resnet, resnet_d, mobilenet_v3) against torchvision 0.14: the same
// state-dict names, order and shapes, and the same logits and BN statistics once loaded with the
// reference's weights (fixtures/make_model_zoo_reference.py, run at test time with python3-torch).
// Also their parameter counts, option checks and torchvision's initialization.
#include "plugin_host.hpp"
#include "weights/safetensors.hpp"
#include "weights/state_dict.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

using ssld::test::PluginHost;

namespace {

struct Case {
  const char* name;    // the fixture's file name
  const char* config;  // the student's table
};

const Case kCases[] = {
    {"resnet18", "type = \"resnet\"\ndepth = 18\nnum_classes = 10"},
    {"resnet50", "type = \"resnet\"\ndepth = 50\nnum_classes = 10"},
    {"resnet101", "type = \"resnet\"\ndepth = 101\nnum_classes = 10"},
    {"resnet_d18", "type = \"resnet_d\"\ndepth = 18\nnum_classes = 10"},
    {"resnet_d50", "type = \"resnet_d\"\ndepth = 50\nnum_classes = 10"},
    {"mobilenet_v3_large", "type = \"mobilenet_v3\"\nvariant = \"large\"\nnum_classes = 10"},
    {"mobilenet_v3_small", "type = \"mobilenet_v3\"\nvariant = \"small\"\nnum_classes = 10"},
    {"mobilenet_v3_large_075", "type = \"mobilenet_v3\"\nvariant = \"large\"\nwidth_mult = 0.75\nnum_classes = 10"},
};

// The reference file of one model, written on first use in this process (ctest runs each test
// in its own process: generating only what a test reads keeps the suite fast). Python computes
// with this process's intra-op thread count: oneDNN's convolutions sum in an order that depends
// on it (1 vs 2 threads moves ResNet-101's logits by 1.6e-4), and with the same count both sides
// run the same kernels.
std::string reference_file(const std::string& name) {
  static const ssld::test::TempDir dir;
  const std::string path = dir.path().string() + "/" + name + ".safetensors";
  if (!std::filesystem::exists(path)) {
    const auto result = ssld::test::run_program(
        "/usr/bin/python3", {SSLD_SOURCE_DIR "/tests/unit/fixtures/make_model_zoo_reference.py", dir.path().string(),
                             std::to_string(at::get_num_threads()), name});
    EXPECT_EQ(result.exit_code, 0) << "fixture generation failed (needs /usr/bin/python3 with torchvision):\n" << result.err;
  }
  return path;
}

struct Reference {
  ssld::NamedTensors state_dict;                  // "model.*" without the prefix, torchvision's order
  std::map<std::string, at::Tensor> after_train;  // "train.*": buffers after one train-mode forward
  std::map<std::string, at::Tensor> tensors;      // everything else: input, eval_logits, train_logits
  std::vector<std::string> parameters, buffers;   // named_parameters() / named_buffers() order
};

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> all;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) all.push_back(line);
  return all;
}

Reference load_reference(const std::string& name) {
  const ssld::host::TensorFile file = ssld::host::read_safetensors(reference_file(name));
  Reference reference;
  for (const auto& [key, tensor] : file.tensors) {
    if (key.rfind("model.", 0) == 0)
      reference.state_dict.emplace_back(key.substr(6), tensor);
    else if (key.rfind("train.", 0) == 0)
      reference.after_train[key.substr(6)] = tensor;
    else
      reference.tensors[key] = tensor;
  }
  reference.parameters = lines(file.metadata.at("parameters"));
  reference.buffers = lines(file.metadata.at("buffers"));
  return reference;
}

template <class Pairs>
std::vector<std::string> keys(const Pairs& pairs) {
  std::vector<std::string> all;
  for (const auto& [name, tensor] : pairs) all.push_back(name);
  return all;
}

double max_difference(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

int64_t count_parameters(ssld::Student& student) {
  int64_t count = 0;
  for (const auto& [name, tensor] : student.named_parameters()) count += tensor.numel();
  return count;
}

class TorchvisionParity : public testing::TestWithParam<Case> {};

}  // namespace

TEST_P(TorchvisionParity, SameNamesLogitsAndBatchNormStatistics) {
  const Case& c = GetParam();
  PluginHost host;
  auto student = host.component<ssld::Student>(c.config);
  ASSERT_TRUE(student);
  const Reference reference = load_reference(c.name);

  // torchvision's state_dict() interleaves each module's parameters and buffers; ssld's lists
  // parameters, then buffers. Both orders agree when each list matches torchvision's own.
  EXPECT_EQ(keys(student->named_parameters()), reference.parameters);
  EXPECT_EQ(keys(student->named_buffers()), reference.buffers);
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& [name, tensor] : ssld::host::state_dict(*student)) shapes[name] = tensor.sizes().vec();
  ASSERT_EQ(shapes.size(), reference.state_dict.size());
  for (const auto& [name, tensor] : reference.state_dict) {
    ASSERT_TRUE(shapes.count(name)) << "the student has no " << name;
    EXPECT_EQ(shapes[name], tensor.sizes().vec()) << name;
  }

  ssld::host::load_state_dict(*student, reference.state_dict, std::string(c.name) + ".safetensors");
  const at::Tensor& input = reference.tensors.at("input");
  student->train(false);
  at::Tensor logits;
  {
    c10::NoGradGuard no_grad;
    logits = student->forward(input, {}).logits;
  }
  ASSERT_EQ(logits.sizes(), reference.tensors.at("eval_logits").sizes());
  const double eval_difference = max_difference(logits, reference.tensors.at("eval_logits"));
  EXPECT_LE(eval_difference, 1e-4) << "eval-mode logits (largest |logit| "
                                   << reference.tensors.at("eval_logits").abs().max().item<double>() << ")";

  // One train-mode forward with gradients on, as in training: batch statistics and the
  // running-statistics update (momentum, unbiased variance, num_batches_tracked) must agree.
  student->train(true);
  const at::Tensor train_logits = student->forward(input, {}).logits;
  std::string train_difference = "n/a (dropout)";
  if (reference.tensors.count("train_logits")) {  // absent where dropout makes them random
    const double difference = max_difference(train_logits, reference.tensors.at("train_logits"));
    EXPECT_LE(difference, 1e-4) << "train-mode logits";
    char text[32];
    std::snprintf(text, sizeof text, "%.3g", difference);
    train_difference = text;
  }
  double statistics_difference = 0.0;
  size_t compared = 0;
  for (const auto& [name, tensor] : student->named_buffers()) {
    ASSERT_TRUE(reference.after_train.count(name)) << name;
    const at::Tensor& expected = reference.after_train.at(name);
    if (tensor.scalar_type() == at::kLong) {
      EXPECT_TRUE(at::equal(tensor, expected)) << name;
    } else {
      const double difference = max_difference(tensor, expected);
      EXPECT_LE(difference, 1e-5) << name;
      statistics_difference = std::max(statistics_difference, difference);
    }
    ++compared;
  }
  EXPECT_EQ(compared, reference.after_train.size());
  // In-place ReLUs and residual adds, as torchvision has them, must leave autograd intact.
  train_logits.square().mean().backward();
  for (const auto& [name, parameter] : student->named_parameters())
    EXPECT_TRUE(parameter.grad().defined() && parameter.grad().isfinite().all().item<bool>()) << name;
  std::printf("[ parity   ] %-24s eval max|dlogit| %.3g, train max|dlogit| %s, BN statistics max|d| %.3g\n", c.name,
              eval_difference, train_difference.c_str(), statistics_difference);
  RecordProperty("eval_logit_difference", std::to_string(eval_difference));
  RecordProperty("bn_statistics_difference", std::to_string(statistics_difference));
}

INSTANTIATE_TEST_SUITE_P(ModelZoo, TorchvisionParity, testing::ValuesIn(kCases),
                         [](const testing::TestParamInfo<Case>& info) { return std::string(info.param.name); });

TEST(ModelZoo, ParameterCountsMatchTorchvisionAndTimm) {
  PluginHost host;
  // torchvision's resnetXX, timm's resnetXXd, torchvision's mobilenet_v3_*, 1000 classes.
  const std::pair<const char*, int64_t> expected[] = {
      {"type = \"resnet\"\ndepth = 18", 11689512},
      {"type = \"resnet\"\ndepth = 34", 21797672},
      {"type = \"resnet\"\ndepth = 50", 25557032},
      {"type = \"resnet\"\ndepth = 152", 60192808},
      {"type = \"resnet_d\"\ndepth = 34", 21816904},
      {"type = \"resnet_d\"\ndepth = 50", 25576264},
      {"type = \"resnet_d\"\ndepth = 101", 44568392},
      {"type = \"mobilenet_v3\"", 5483032},
      {"type = \"mobilenet_v3\"\nvariant = \"small\"", 2542856},
      {"type = \"mobilenet_v3\"\nwidth_mult = 0.75", 3377576},
  };
  for (const auto& [config, count] : expected) {
    auto student = host.component<ssld::Student>(config);
    EXPECT_EQ(count_parameters(*student), count) << config;
    EXPECT_EQ(student->num_classes(), 1000) << config;
  }
}

TEST(ModelZoo, InitializationFollowsTorchvisionAndTheRunSeed) {
  PluginHost host;
  auto named = [](ssld::Student& student) {
    std::map<std::string, at::Tensor> all;
    for (auto& [name, tensor] : ssld::host::state_dict(student)) all[name] = tensor;
    return all;
  };
  auto resnet = host.component<ssld::Student>("type = \"resnet\"\ndepth = 50\nzero_init_residual = true", 7);
  auto weights = named(*resnet);
  // He init, fan_out: std = sqrt(2 / (512 * 3 * 3)) for layer4's 3x3 conv (2.4M draws).
  EXPECT_NEAR(weights.at("layer4.0.conv2.weight").std().item<double>(), std::sqrt(2.0 / 4608), 2e-4);
  EXPECT_EQ(weights.at("layer4.2.bn3.weight").abs().max().item<double>(), 0.0) << "zero_init_residual";
  EXPECT_EQ(weights.at("layer4.2.bn2.weight").min().item<double>(), 1.0);
  EXPECT_EQ(weights.at("bn1.bias").abs().max().item<double>(), 0.0);
  auto again = host.component<ssld::Student>("type = \"resnet\"\ndepth = 50", 7);
  EXPECT_TRUE(at::equal(named(*again).at("conv1.weight"), weights.at("conv1.weight"))) << "same seed, same weights";
  EXPECT_EQ(named(*again).at("layer4.2.bn3.weight").min().item<double>(), 1.0) << "zero_init_residual defaults to off";

  auto mobilenet = named(*host.component<ssld::Student>("type = \"mobilenet_v3\"", 7));
  EXPECT_NEAR(mobilenet.at("classifier.0.weight").std().item<double>(), 0.01, 1e-4);  // N(0, 0.01)
  EXPECT_EQ(mobilenet.at("classifier.3.bias").abs().max().item<double>(), 0.0);
  EXPECT_EQ(mobilenet.at("features.4.block.2.fc1.bias").abs().max().item<double>(), 0.0) << "SE conv bias";
  EXPECT_NEAR(mobilenet.at("features.15.block.0.0.weight").std().item<double>(), std::sqrt(2.0 / 960), 1e-3);
}

TEST(ModelZoo, RejectsUnknownDepthsVariantsAndWidths) {
  PluginHost host;
  EXPECT_THROW(host.component<ssld::Student>("type = \"resnet\"\ndepth = 20"), ssld::host::ConfigError);
  EXPECT_THROW(host.component<ssld::Student>("type = \"resnet_d\"\ndepth = 200"), ssld::host::ConfigError);
  EXPECT_THROW(host.component<ssld::Student>("type = \"resnet\"\nnum_classes = 0"), ssld::host::ConfigError);
  EXPECT_THROW(host.component<ssld::Student>("type = \"mobilenet_v3\"\nvariant = \"medium\""), ssld::host::ConfigError);
  EXPECT_THROW(host.component<ssld::Student>("type = \"mobilenet_v3\"\nwidth_mult = 0.0"), ssld::host::ConfigError);
  EXPECT_THROW(host.component<ssld::Student>("type = \"mobilenet_v3\"\ndropout = 1.0"), ssld::host::ConfigError);
}
