// Student plugins: output shapes, PyTorch-style state-dict names, option checks.
#include "plugin_host.hpp"

#include <ATen/ops/randn.h>

#include <gtest/gtest.h>

#include <set>

using ssld::test::PluginHost;

namespace {
std::set<std::string> names(ssld::Student& student) {
  std::set<std::string> all;
  for (const auto& [name, tensor] : student.named_parameters()) all.insert(name);
  for (const auto& [name, tensor] : student.named_buffers()) all.insert(name);
  return all;
}
}  // namespace

TEST(Models, CifarResNetHasTorchvisionStyleNamesAndPredictsEveryClass) {
  PluginHost host;
  auto student = host.component<ssld::Student>("type = \"cifar_resnet\"\ndepth = 20\nin_channels = 1\nnum_classes = 7");
  const auto keys = names(*student);
  for (const char* key : {"conv1.weight", "bn1.running_mean", "layer1.2.conv2.weight", "layer2.0.downsample.0.weight",
                          "layer3.2.bn2.num_batches_tracked", "fc.bias"})
    EXPECT_TRUE(keys.count(key)) << key;
  EXPECT_FALSE(keys.count("layer1.0.downsample.0.weight"));  // no shortcut conv where the shape stays
  int64_t parameters = 0;
  for (const auto& [name, tensor] : student->named_parameters()) parameters += tensor.numel();
  EXPECT_NEAR(static_cast<double>(parameters), 0.27e6, 0.01e6);  // ResNet-20's 0.27M (He et al.)
  student->train(false);
  EXPECT_EQ(student->forward(at::randn({2, 1, 28, 28}), {}).logits.sizes(), (std::vector<int64_t>{2, 7}));
}

TEST(Models, SmallCnnNamesAndDepthCheck) {
  PluginHost host;
  auto student = host.component<ssld::Student>("type = \"small_cnn\"\nwidth = 8\ndepth = 2");
  const auto keys = names(*student);
  EXPECT_TRUE(keys.count("features.0.weight"));
  EXPECT_TRUE(keys.count("classifier.weight"));
  student->train(false);
  EXPECT_EQ(student->forward(at::randn({3, 1, 28, 28}), {}).logits.sizes(), (std::vector<int64_t>{3, 10}));
  EXPECT_THROW(host.component<ssld::Student>("type = \"cifar_resnet\"\ndepth = 21"), ssld::host::ConfigError);
}
