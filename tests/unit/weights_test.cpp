// Weights files: torch.save files read without Python (state dicts, checkpoints, DataParallel
// prefixes, dtypes, shared and non-contiguous storages) against the values python3-torch
// reports, .pth written by ssld read back by torch.load, and the strict/ignore loading rules.
#include "plugin_host.hpp"
#include "weights/state_dict.hpp"
#include "weights/torch_file.hpp"

#include <ssld/error.hpp>

#include <ATen/ATen.h>
#include <torch/csrc/jit/serialization/pickle.h>

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

using ssld::test::PluginHost;
using ssld::test::TempDir;
using ssld::test::error_of;

namespace {

const std::string kScript = SSLD_SOURCE_DIR "/tests/unit/fixtures/torch_files.py";

nlohmann::ordered_json python(const std::vector<std::string>& args) {
  std::vector<std::string> all = {kScript};
  all.insert(all.end(), args.begin(), args.end());
  const auto result = ssld::test::run_program("/usr/bin/python3", all);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  return nlohmann::ordered_json::parse(result.out);
}

// Every tensor of `tensors` equals python's description of it (dtype, shape, values).
void expect_same(const ssld::NamedTensors& tensors, const nlohmann::ordered_json& expected) {
  ASSERT_EQ(tensors.size(), expected.size());
  size_t i = 0;
  for (const auto& [name, description] : expected.items()) {
    const auto& [got_name, tensor] = tensors[i++];
    EXPECT_EQ(got_name, name) << "the file's order is kept";
    static const std::map<std::string, at::ScalarType> dtypes = {
        {"float32", at::kFloat}, {"float16", at::kHalf},   {"float64", at::kDouble}, {"int64", at::kLong},
        {"bool", at::kBool},     {"bfloat16", at::kBFloat16}, {"int8", at::kChar},   {"uint8", at::kByte},
        {"int32", at::kInt}};
    EXPECT_EQ(tensor.scalar_type(), dtypes.at(description["dtype"].get<std::string>())) << name;
    EXPECT_EQ(tensor.sizes().vec(), description["shape"].get<std::vector<int64_t>>()) << name;
    const at::Tensor values = tensor.to(at::kDouble).flatten();
    const auto want = description["values"].get<std::vector<double>>();
    ASSERT_EQ(values.numel(), static_cast<int64_t>(want.size())) << name;
    for (size_t k = 0; k < want.size(); ++k) EXPECT_EQ(values[static_cast<int64_t>(k)].item<double>(), want[k]) << name;
  }
}

}  // namespace

TEST(TorchFile, ReadsStateDictsCheckpointsAndPrefixedFilesLikeTorchLoad) {
  TempDir dir;
  const nlohmann::ordered_json expected = python({"write", dir.path().string()});
  expect_same(ssld::host::read_torch_file((dir / "state_dict.pth").string()), expected["state_dict"]);
  for (const char* file : {"checkpoint.pth", "model_key.pt", "data_parallel.pth"})
    expect_same(ssld::host::read_torch_file((dir / file).string()), expected["net"]);
  EXPECT_TRUE(ssld::host::looks_like_torch_file((dir / "checkpoint.pth").string()));

  const std::string legacy = error_of([&] { ssld::host::read_weights((dir / "legacy.pth").string()); });
  EXPECT_NE(legacy.find("legacy.pth"), std::string::npos) << legacy;
  const std::string no_state = error_of([&] { ssld::host::read_torch_file((dir / "no_state_dict.pth").string()); });
  EXPECT_NE(no_state.find("holds no state dict: its top-level keys are epoch, optimizer"), std::string::npos) << no_state;

  // A truncated download fails cleanly, naming the file.
  const std::string bytes = ssld::test::read_file(dir / "state_dict.pth");
  dir.write("truncated.pth", bytes.substr(0, bytes.size() / 2));
  const std::string truncated = error_of([&] { ssld::host::read_weights((dir / "truncated.pth").string()); });
  EXPECT_NE(truncated.find("truncated.pth"), std::string::npos) << truncated;
}

// torch.load(weights_only=True), PyTorch's default since 2.6, reads every dtype ssld writes.
TEST(TorchFile, WhatSsldWritesTorchLoadReadsWithWeightsOnly) {
  TempDir dir;
  const ssld::NamedTensors tensors = {
      {"layer.weight", at::arange(6, at::kFloat).view({2, 3}).t()},  // written contiguous
      {"layer.bias", at::tensor({-1.5, 2.25}, at::kFloat)},
      {"bn.num_batches_tracked", at::scalar_tensor(7, at::kLong)},
      {"half", at::tensor({0.5, 1.0}, at::kFloat).to(at::kHalf)},
      {"brain", at::tensor({0.5, -3.0}, at::kFloat).to(at::kBFloat16)},
      {"mask", at::tensor({1, 0, 1}, at::kInt).to(at::kBool)},
      {"small", at::tensor({-128, 127}, at::kChar)},
      {"bytes", at::tensor({0, 255}, at::kInt).to(at::kByte)},
      {"ints", at::tensor({-70000, 70000}, at::kInt)},
      {"big", at::tensor({int64_t{1} << 40, -(int64_t{1} << 40)}, at::kLong)},
      {"double", at::tensor({1e-300, 2.5}, at::kDouble)},
      {"empty", at::zeros({0, 3})},
      {"wide", at::arange(70000, at::kFloat).view({7, 10000})}};  // sizes and strides past BININT1/2
  const std::string path = (dir / "out.pth").string();
  ssld::host::write_weights(path, tensors);
  const nlohmann::ordered_json loaded = python({"read", path});
  expect_same(tensors, loaded);
  expect_same(ssld::host::read_weights(path), loaded);  // and back again
}

// .pth files of earlier ssld versions (libtorch's pickle_save, with its type tag) still read.
TEST(TorchFile, FilesOfEarlierSsldVersionsStillRead) {
  TempDir dir;
  c10::Dict<std::string, at::Tensor> dict;
  dict.insert("w", at::arange(4, at::kFloat).view({2, 2}));
  dict.insert("n", at::scalar_tensor(3, at::kLong));
  const std::vector<char> bytes = torch::jit::pickle_save(dict);
  dir.write("old.pth", std::string(bytes.begin(), bytes.end()));
  const ssld::NamedTensors read = ssld::host::read_weights((dir / "old.pth").string());
  ASSERT_EQ(read.size(), 2u);
  EXPECT_EQ(read[0].first, "w");
  EXPECT_TRUE(read[0].second.equal(at::arange(4, at::kFloat).view({2, 2})));
  EXPECT_EQ(read[1].second.item<int64_t>(), 3);
}

TEST(LoadStateDict, IgnorePatternsAndNonStrictLoading) {
  PluginHost host;
  auto source = host.component<ssld::Student>("type = \"small_cnn\"\nwidth = 4\nnum_classes = 10", 1);
  auto target = host.component<ssld::Student>("type = \"small_cnn\"\nwidth = 4\nnum_classes = 7", 2);
  const ssld::NamedTensors weights = ssld::host::state_dict(*source);

  const std::string mismatch = error_of([&] { ssld::host::load_state_dict(*target, weights, "w.pth"); });
  EXPECT_NE(mismatch.find("shape mismatch (file vs model) classifier.weight [10, 8] vs [7, 8]"), std::string::npos)
      << mismatch;
  EXPECT_NE(mismatch.find("ignore = [\"fc.*\"]"), std::string::npos) << "the message says how to replace a head";

  const at::Tensor head_before = ssld::host::state_dict(*target).back().second.clone();
  ssld::host::load_state_dict(*target, weights, "w.pth", {true, {"classifier.*"}});
  for (const auto& [name, tensor] : ssld::host::state_dict(*target)) {
    if (name.rfind("classifier.", 0) == 0) continue;
    for (const auto& [source_name, value] : weights)
      if (source_name == name) EXPECT_TRUE(at::equal(tensor, value)) << name;
  }

  ssld::NamedTensors partial(weights.begin() + 2, weights.end());  // the first conv's tensors are absent
  const std::string strict = error_of([&] { ssld::host::load_state_dict(*source, partial, "p.pth"); });
  EXPECT_NE(strict.find("missing features.0.weight"), std::string::npos) << strict;
  EXPECT_EQ(error_of([&] { ssld::host::load_state_dict(*source, partial, "p.pth", {false, {}}); }), "(no error)");
}
