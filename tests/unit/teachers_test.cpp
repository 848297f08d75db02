// Teachers: torchscript against python3-torch's outputs for the same scripted files (generated
// at test time by fixtures/make_torchscript_teachers.py), ensemble arithmetic, the checkpoint
// teacher's adapter, and the errors a user sees for a wrong file or class count.
#include "plugin_host.hpp"
#include "weights/safetensors.hpp"
#include "weights/state_dict.hpp"

#include <ssld/inference_graph.hpp>
#include <ssld/model.hpp>
#include <ssld/teacher_support.hpp>

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

#include <gtest/gtest.h>

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <sstream>

using ssld::test::PluginHost;

namespace {

// The fixture's input: x.flat[i] = sin(0.37 i), [4, 1, 28, 28].
at::Tensor fixture_input() {
  return at::sin(0.37 * at::arange(4 * 28 * 28, at::kDouble)).to(at::kFloat).view({4, 1, 28, 28});
}

at::Tensor from_json(const nlohmann::json& rows) {
  std::vector<float> values;
  for (const auto& row : rows)
    for (const auto& v : row) values.push_back(v.get<float>());
  return at::tensor(values).view({static_cast<int64_t>(rows.size()), -1});
}

// Writes the scripted teachers once per test binary and returns python3-torch's outputs.
struct Fixtures {
  std::string dir;
  nlohmann::json outputs;
};
const Fixtures& fixtures() {
  static const ssld::test::TempDir dir;
  static const Fixtures made = [] {
    const auto result = ssld::test::run_program(
        "/usr/bin/python3", {SSLD_SOURCE_DIR "/tests/unit/fixtures/make_torchscript_teachers.py", dir.path().string()});
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return Fixtures{dir.path().string(), nlohmann::json::parse(result.out)};
  }();
  return made;
}

std::string model(const std::string& name) { return "\"" + fixtures().dir + "/" + name + ".pt\""; }

double max_difference(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

TEST(TorchScriptTeacher, MatchesPythonForTensorTupleAndDictOutputs) {
  PluginHost host;
  for (const std::string name : {"tensor", "tuple", "dict"}) {
    auto teacher = host.component<ssld::Teacher>("type = \"torchscript\"\npath = " + model(name) +
                                                 "\nprobe_shape = [1, 28, 28]");
    ASSERT_TRUE(teacher) << name;
    EXPECT_EQ(teacher->num_classes(), 10) << "found by the probe";
    const ssld::ModelOutput output = teacher->forward(fixture_input(), {});
    EXPECT_LT(max_difference(output.logits, from_json(fixtures().outputs[name]["logits"])), 1e-5) << name;
    EXPECT_FALSE(output.logits.requires_grad());
    EXPECT_EQ(teacher->named_state().size(), 8u) << "conv, bn (2 parameters, 3 buffers), fc (2)";
    EXPECT_EQ(teacher->identity().rfind("torchscript:", 0), 0u);
  }
  auto dict = host.component<ssld::Teacher>("type = \"torchscript\"\npath = " + model("dict") +
                                            "\nnum_classes = 10\nverify_num_classes = false");
  const ssld::ModelOutput output = dict->forward(fixture_input(), {"embedding"});
  EXPECT_LT(max_difference(output.features.at("embedding"), from_json(fixtures().outputs["dict"]["embedding"])), 1e-5);
  EXPECT_THROW(dict->forward(fixture_input(), {"nonexistent"}), ssld::Error);
  for (const auto& [name, tensor] : dict->named_state()) EXPECT_FALSE(tensor.requires_grad()) << name;
}

TEST(TorchScriptTeacher, ClearErrorsForAMissingFileOrWrongClassCount) {
  PluginHost host;
  try {
    host.component<ssld::Teacher>("type = \"torchscript\"\npath = \"/nonexistent/model.pt\"");
    FAIL() << "a missing file was accepted";
  } catch (const std::exception& error) {
    EXPECT_NE(std::string(error.what()).find("cannot load TorchScript model '/nonexistent/model.pt'"), std::string::npos)
        << error.what();
  }
  try {
    host.component<ssld::Teacher>("type = \"torchscript\"\npath = " + model("seven") +
                                  "\nnum_classes = 10\nprobe_shape = [1, 28, 28]");
    FAIL() << "a wrong class count was accepted";
  } catch (const std::exception& error) {
    EXPECT_NE(std::string(error.what()).find("the model predicts 7 classes, the config says 10"), std::string::npos)
        << error.what();
  }
}

TEST(EnsembleTeacher, AveragesProbabilitiesOrLogitsWithWeights) {
  PluginHost host;
  const std::string members = "[[component.members]]\ntype = \"torchscript\"\npath = " + model("tensor") +
                              "\nprobe_shape = [1, 28, 28]\n[[component.members]]\ntype = \"torchscript\"\npath = " +
                              model("tuple") + "\nprobe_shape = [1, 28, 28]\n";
  const at::Tensor a = from_json(fixtures().outputs["tensor"]["logits"]);
  const at::Tensor b = from_json(fixtures().outputs["tuple"]["logits"]);

  auto probabilities = host.component<ssld::Teacher>("type = \"ensemble\"\nweights = [3, 1]\n" + members);
  const at::Tensor expected = (0.75 * a.softmax(1) + 0.25 * b.softmax(1)).log();
  const at::Tensor got = probabilities->forward(fixture_input(), {}).logits;
  EXPECT_LT(max_difference(got, expected), 1e-5);
  EXPECT_LT(max_difference(got.softmax(1), 0.75 * a.softmax(1) + 0.25 * b.softmax(1)), 1e-6);
  EXPECT_EQ(probabilities->named_state().size(), 16u);
  EXPECT_EQ(probabilities->named_state()[8].first, "members.1.conv.weight");

  auto logits = host.component<ssld::Teacher>("type = \"ensemble\"\ncombine = \"logits\"\n" + members);
  EXPECT_LT(max_difference(logits->forward(fixture_input(), {}).logits, 0.5 * a + 0.5 * b), 1e-5);
  EXPECT_NE(logits->identity(), probabilities->identity()) << "caches must tell the two apart";

  try {
    host.component<ssld::Teacher>("type = \"ensemble\"\n" + members + "[[component.members]]\ntype = \"torchscript\"\n"
                                  "path = " + model("seven") + "\nprobe_shape = [1, 28, 28]\n");
    FAIL() << "members with different class counts were accepted";
  } catch (const std::exception& error) {
    EXPECT_NE(std::string(error.what()).find("member 2 predicts 7 classes, member 0 10"), std::string::npos)
        << error.what();
  }
}

TEST(CheckpointTeacher, AdapterResizesAndRenormalizesBeforeTheNetwork) {
  PluginHost host;
  auto student = host.component<ssld::Student>("type = \"small_cnn\"\nwidth = 4\ndepth = 2", 7);
  const std::string weights = (host.dir() / "teacher.safetensors").string();
  ssld::host::write_safetensors(weights, ssld::host::state_dict(*student), {{"format", "ssld-weights-1"}});
  auto teacher = host.component<ssld::Teacher>(
      "type = \"checkpoint\"\nweights = \"" + weights +
      "\"\nstudent = { type = \"small_cnn\", width = 4, depth = 2 }\nadapter = { size = 32, mean = [0.5], std = [2.0] }"
      "\noptimize = \"off\"");
  const at::Tensor images = fixture_input();
  student->train(false);
  const at::Tensor adapted = (at::upsample_bilinear2d(images, {32, 32}, false) - 0.5) / 2.0;
  const at::Tensor expected = student->forward(adapted, {}).logits;
  EXPECT_LT(max_difference(teacher->forward(images, {}).logits, expected), 1e-6);
  EXPECT_EQ(teacher->named_state().size(), ssld::host::state_dict(*student).size());
}

// optimize: the checkpoint teacher's network traced into a frozen inference graph, one per batch
// shape, gives the network's logits within 1e-4 (BatchNorm statistics made non-trivial so the
// folding matters), says so in the log, and leaves features and `off` to the network as loaded.
TEST(CheckpointTeacher, FrozenInferenceGraphGivesTheNetworksLogitsForEveryBatchShape) {
  PluginHost host;
  std::ostringstream log;
  const auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  spdlog::default_logger()->sinks().push_back(sink);
  auto student = host.component<ssld::Student>("type = \"small_cnn\"\nwidth = 8\ndepth = 2", 7);
  for (auto& [name, buffer] : student->named_buffers()) {
    if (name.find("running_mean") != std::string::npos) buffer.uniform_(-0.5, 0.5);
    if (name.find("running_var") != std::string::npos) buffer.uniform_(0.5, 2.0);
  }
  for (auto& [name, parameter] : student->named_parameters())
    if (name.find("features.1.") != std::string::npos) parameter.detach().uniform_(0.5, 1.5);
  const std::string weights = (host.dir() / "teacher.safetensors").string();
  ssld::host::write_safetensors(weights, ssld::host::state_dict(*student), {{"format", "ssld-weights-1"}});
  const std::string table = "type = \"checkpoint\"\nweights = \"" + weights +
                            "\"\nstudent = { type = \"small_cnn\", width = 8, depth = 2 }\n";
  auto loaded = host.component<ssld::Teacher>(table + "optimize = \"off\"");
  auto graph = host.component<ssld::Teacher>(table + "optimize = \"on\"");
  student->train(false);
  for (const int64_t batch : {4, 3, 4}) {
    const at::Tensor images = fixture_input().narrow(0, 0, batch);
    const at::Tensor reference = student->forward(images, {}).logits;
    EXPECT_EQ(max_difference(loaded->forward(images, {}).logits, reference), 0.0) << "off: the network as loaded";
    const at::Tensor folded = graph->forward(images, {}).logits;
    EXPECT_EQ(folded.scalar_type(), at::kFloat);
    EXPECT_FALSE(folded.requires_grad());
    EXPECT_LT(max_difference(folded, reference), 1e-4) << "batch of " << batch;
  }
  const std::string said = log.str();
  EXPECT_NE(said.find("frozen inference graph (logits within"), std::string::npos) << said;
  EXPECT_EQ(said.find("keeping the model as loaded"), std::string::npos) << said;
  const ssld::ModelOutput with_features = graph->forward(fixture_input(), {"avgpool"});
  EXPECT_EQ(with_features.features.at("avgpool").size(1), 16);
  EXPECT_LT(max_difference(with_features.logits, student->forward(fixture_input(), {}).logits), 1e-6);
  EXPECT_EQ(graph->named_state().size(), ssld::host::state_dict(*student).size()) << "the weights, for the guard";
  auto& sinks = spdlog::default_logger()->sinks();
  sinks.erase(std::remove(sinks.begin(), sinks.end(), sink), sinks.end());
}

// A trace keeps the branch the traced batch took: a forward that reads tensor values on the host
// (and may branch on them) is refused rather than traced; a plain one gives a graph that computes
// the forward for other values too.
TEST(InferenceGraph, AForwardThatReadsValuesOnTheHostIsNotTraced) {
  const at::Tensor weight = at::sin(at::arange(10 * 784, at::kFloat)).view({10, 784});
  const at::Tensor batch = fixture_input();
  at::Tensor logits;
  const ssld::LogitsFunction plain = [&](const at::Tensor& x) { return at::mm(x.flatten(1), weight.t()); };
  torch::jit::Module graph = ssld::trace_for_inference(plain, batch, logits);
  EXPECT_EQ(max_difference(logits, plain(batch)), 0.0);
  EXPECT_LT(max_difference(graph.forward({-batch}).toTensor(), plain(-batch)), 1e-4);
  const ssld::LogitsFunction branching = [&](const at::Tensor& x) {
    const at::Tensor y = at::mm(x.flatten(1), weight.t());
    return x.sum().item<double>() > 0 ? y : -y;
  };
  try {
    ssld::trace_for_inference(branching, batch, logits);
    ADD_FAILURE() << "a forward that branches on item() was traced";
  } catch (const ssld::Error& error) {
    EXPECT_NE(std::string(error.what()).find("reads 1 tensor value(s) on the host"), std::string::npos) << error.what();
  }
}

// precision = "bf16" on the CPU: where the CPU has AVX512-BF16 or AMX the teacher runs in bf16
// (its weights in bf16, its logits back in float32, close to fp32's); elsewhere it warns and
// runs in fp32, giving fp32's logits exactly.
TEST(CheckpointTeacher, Bf16RunsInBf16WhereTheCpuHasItAndFallsBackToFp32Elsewhere) {
  PluginHost host;
  auto student = host.component<ssld::Student>("type = \"small_cnn\"\nwidth = 8\ndepth = 2", 7);
  const std::string weights = (host.dir() / "teacher.safetensors").string();
  ssld::host::write_safetensors(weights, ssld::host::state_dict(*student), {{"format", "ssld-weights-1"}});
  const std::string table = "type = \"checkpoint\"\nweights = \"" + weights +
                            "\"\nstudent = { type = \"small_cnn\", width = 8, depth = 2 }\n";
  auto fp32 = host.component<ssld::Teacher>(table);
  auto bf16 = host.component<ssld::Teacher>(table + "precision = \"bf16\"\n");
  const at::Tensor images = fixture_input();
  const at::Tensor reference = fp32->forward(images, {}).logits, low = bf16->forward(images, {}).logits;
  EXPECT_EQ(low.scalar_type(), at::kFloat);
  bool any_bf16 = false;
  for (const auto& [name, tensor] : bf16->named_state()) any_bf16 |= tensor.scalar_type() == at::kBFloat16;
  EXPECT_EQ(any_bf16, ssld::cpu_has_bf16());
  if (ssld::cpu_has_bf16()) {
    const double scale = reference.abs().max().item<double>();
    EXPECT_LT(max_difference(low, reference), 0.05 * scale) << "bf16 keeps about 3 significant digits";
    EXPECT_GT(max_difference(low, reference), 0.0) << "and is not fp32";
  } else {
    EXPECT_EQ(max_difference(low, reference), 0.0);
  }
}

// optimize: a frozen, optimized copy of the scripted teacher (torch::jit::freeze +
// optimize_for_inference) gives the loaded module's logits and dict features within 1e-4, and
// `off` runs it exactly as loaded; the loaded module's tensors stay what the guard checks.
TEST(TorchScriptTeacher, FrozenAndOptimizedGivesTheSameLogitsAndFeatures) {
  PluginHost host;
  // The teacher's log says whether the optimized copy is in use.
  std::ostringstream log;
  const auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log);
  spdlog::default_logger()->sinks().push_back(sink);
  for (const std::string name : {"tensor", "tuple", "dict"}) {
    const std::string table = "type = \"torchscript\"\npath = " + model(name) + "\nprobe_shape = [1, 28, 28]\n";
    auto loaded = host.component<ssld::Teacher>(table + "optimize = \"off\"");
    log.str("");
    auto optimized = host.component<ssld::Teacher>(table + "optimize = \"on\"");
    EXPECT_NE(log.str().find("frozen inference graph (logits within"), std::string::npos)
        << name << ": the optimized copy is not in use: " << log.str();
    auto automatic = host.component<ssld::Teacher>(table);
    const at::Tensor reference = loaded->forward(fixture_input(), {}).logits;
    EXPECT_LT(max_difference(reference, from_json(fixtures().outputs[name]["logits"])), 1e-5) << name;
    EXPECT_LT(max_difference(optimized->forward(fixture_input(), {}).logits, reference), 1e-4) << name;
    EXPECT_LT(max_difference(automatic->forward(fixture_input(), {}).logits, reference), 1e-4) << name;
    EXPECT_EQ(optimized->named_state().size(), 8u) << "the loaded module's tensors, for the teacher guard";
  }
  auto dict = host.component<ssld::Teacher>("type = \"torchscript\"\npath = " + model("dict") +
                                            "\nprobe_shape = [1, 28, 28]\noptimize = \"on\"");
  EXPECT_LT(max_difference(dict->forward(fixture_input(), {"embedding"}).features.at("embedding"),
                           from_json(fixtures().outputs["dict"]["embedding"])),
            1e-4);
  auto& sinks = spdlog::default_logger()->sinks();
  sinks.erase(std::remove(sinks.begin(), sinks.end(), sink), sinks.end());
}
