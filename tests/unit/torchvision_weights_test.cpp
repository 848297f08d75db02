// Weights between torchvision and ssld through torch.save files, both ways: a torchvision
// state dict saved in Python loads into the ssld student with no renaming and predicts the same;
// the student's weights written by ssld as .pth load strictly into the torchvision model in
// Python and predict what the student predicts (fixtures/torchvision_roundtrip.py).
#include "plugin_host.hpp"
#include "weights/state_dict.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

using ssld::test::PluginHost;

namespace {

at::Tensor python_logits(const std::string& mode, const std::string& arch, const std::string& path) {
  const auto result = ssld::test::run_program(
      "/usr/bin/python3", {SSLD_SOURCE_DIR "/tests/unit/fixtures/torchvision_roundtrip.py", mode, arch, path,
                           std::to_string(at::get_num_threads())});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  std::vector<float> values;
  int64_t rows = 0;
  const nlohmann::json parsed = nlohmann::json::parse(result.out);
  for (const auto& row : parsed.at("logits")) {
    ++rows;
    for (const auto& v : row) values.push_back(v.get<float>());
  }
  return at::tensor(values).view({rows, -1});
}

at::Tensor student_logits(ssld::Student& student) {
  c10::NoGradGuard no_grad;
  student.train(false);
  const at::Tensor x = at::sin(0.37 * at::arange(2 * 3 * 64 * 64, at::kDouble)).to(at::kFloat).view({2, 3, 64, 64});
  return student.forward(x, {}).logits;
}

}  // namespace

class TorchvisionWeights : public testing::TestWithParam<std::pair<const char*, const char*>> {};

TEST_P(TorchvisionWeights, LoadFromAndExportToPython) {
  const auto [arch, table] = GetParam();
  PluginHost host;
  const std::string from_python = (host.dir() / "torchvision.pth").string();
  const at::Tensor expected = python_logits("save", arch, from_python);

  auto student = host.component<ssld::Student>(table);
  ssld::host::load_state_dict(*student, ssld::host::read_weights(from_python), from_python);  // strict
  EXPECT_LT((student_logits(*student) - expected).abs().max().item<double>(), 1e-4);

  // Change the weights in C++, write them as .pth, and let torchvision load them strictly.
  {
    c10::NoGradGuard no_grad;
    for (auto& [name, parameter] : student->named_parameters()) parameter.mul_(0.9).add_(0.01);
  }
  const std::string to_python = (host.dir() / "from_ssld.pth").string();
  ssld::host::write_weights(to_python, ssld::host::state_dict(*student));
  const at::Tensor ours = student_logits(*student);
  EXPECT_LT((python_logits("load", arch, to_python) - ours).abs().max().item<double>(), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(ModelZoo, TorchvisionWeights,
                         testing::Values(std::make_pair("resnet18", "type = \"resnet\"\ndepth = 18\nnum_classes = 10"),
                                         std::make_pair("mobilenet_v3_small",
                                                        "type = \"mobilenet_v3\"\nvariant = \"small\"\nnum_classes = 10")));
