// Weights files: torch.save files read without Python (state dicts, checkpoints, DataParallel
// prefixes, dtypes, shared and non-contiguous storages) against the values python3-torch
// reports, .pth written by ssld read back by torch.load, and the strict/ignore loading rules.
#include "plugin_host.hpp"
#include "weights/state_dict.hpp"
#include "weights/torch_file.hpp"

#include <ssld/error.hpp>

#include <ATen/ATen.h>

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
        {"float32", at::kFloat}, {"float16", at::kHalf}, {"float64", at::kDouble}, {"int64", at::kLong}, {"bool", at::kBool}};
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

TEST(TorchFile, WhatSsldWritesTorchLoadReads) {
  TempDir dir;
  const ssld::NamedTensors tensors = {
      {"layer.weight", at::arange(6, at::kFloat).view({2, 3}).t()},  // written contiguous
      {"layer.bias", at::tensor({-1.5, 2.25}, at::kFloat)},
      {"bn.num_batches_tracked", at::scalar_tensor(7, at::kLong)},
      {"half", at::tensor({0.5, 1.0}, at::kFloat).to(at::kHalf)}};
  const std::string path = (dir / "out.pth").string();
  ssld::host::write_weights(path, tensors);
  const nlohmann::ordered_json loaded = python({"read", path});
  expect_same(tensors, loaded);
  expect_same(ssld::host::read_weights(path), loaded);  // and back again
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
