// Feature distillation end to end on a Fashion-MNIST subset: losses that own state (FitNet's
// connector, CRD's embeddings and memories over the training set, ReviewKD's fusion modules)
// are saved in the checkpoint, and an interrupted and resumed run ends bit-identical to an
// uninterrupted one; a loss from a plugin built for SDK ABI 1.1 (losses without state) trains.
#include "fmnist_subset.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

using ssld::test::RunResult;
using ssld::test::TempDir;

namespace {

const std::string kSsld = SSLD_BINARY;

std::string config(const std::string& body) {
  return ssld::test::one_thread_run_tables("t") + ssld::test::fmnist_data_tables({1000, 50, true, true, 500, 250}) +
         R"([student]
type = "small_cnn"
width = 8
depth = 2
[train]
epochs = 2
lr = 0.05
warmup_epochs = 0.2
log_every = 2
)" + body;
}

// A teacher trained with labels, then a student distilled from its logits and features.
const char* kFeatureStages = R"(
[[loss]]
type = "ce"
[[stage]]
name = "teacher"
student = { width = 16 }
train = { epochs = 1 }
[[stage]]
name = "distill"
teacher = { stage = "teacher" }
train = { epochs = 2 }
loss = [
  { type = "kl" },
  { type = "fitnet", student = ["features.13"], teacher = ["features.13"], factor = 1.0, lr_scale = 2.0 },
  { type = "crd", student = ["avgpool"], teacher = ["avgpool"], feat_dim = 16, nce_k = 64 },
  { type = "reviewkd", student = ["features.6", "features.13", "avgpool"], teacher = ["features.6", "features.13", "avgpool"], warmup_steps = 10 },
]
)";

// The tensor names in a safetensors file's header.
std::string safetensors_header(const std::filesystem::path& file) {
  const std::string bytes = ssld::test::read_file(file);
  if (bytes.size() < 8) return "";
  uint64_t size = 0;
  for (int i = 7; i >= 0; --i) size = (size << 8) | static_cast<unsigned char>(bytes[i]);
  return bytes.substr(8, std::min<uint64_t>(size, bytes.size() - 8));
}

}  // namespace

TEST(FeatureDistill, LossStateIsCheckpointedAndAResumedRunEqualsAnUninterruptedOne) {
  TempDir straight, interrupted;
  straight.write("c.toml", config(kFeatureStages));
  interrupted.write("c.toml", config(kFeatureStages));
  const RunResult full = ssld::test::run_program(kSsld, {"-q", "train", (straight / "c.toml").string()});
  ASSERT_EQ(full.exit_code, 0) << full.err;

  const auto distill = interrupted / "runs" / "t" / "distill";
  ASSERT_EQ(ssld::test::interrupt_once_written(kSsld, {"-q", "train", (interrupted / "c.toml").string()},
                                               distill / "metrics_steps.jsonl"),
            3);
  const std::string header = safetensors_header(distill / "checkpoints" / "last.safetensors");
  for (const char* name : {"memory_student", "memory_teacher", "z_student", "embed_student.weight", "connector0.0.weight",
                           "connector0.1.running_mean", "abf0.attention.0.weight", "steps"})
    EXPECT_NE(header.find(name), std::string::npos) << name << " is not in the checkpoint";

  const RunResult resumed = ssld::test::run_program(kSsld, {"-q", "train", (interrupted / "c.toml").string(), "--resume"});
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(ssld::test::read_file(straight / "runs" / "t" / "distill" / "student.safetensors"),
            ssld::test::read_file(distill / "student.safetensors"))
      << "resumed weights differ from the uninterrupted run's";
  // The exported student has the student's tensors only, none of the losses'.
  EXPECT_EQ(safetensors_header(distill / "student.safetensors").find("memory_student"), std::string::npos);
  // ... unless asked: `ssld export --loss-state` adds them from the last checkpoint.
  const auto exported = interrupted / "with_losses.safetensors";
  const RunResult with_losses = ssld::test::run_program(
      kSsld, {"-q", "export", (interrupted / "c.toml").string(), "--loss-state", "-o", exported.string()});
  ASSERT_EQ(with_losses.exit_code, 0) << with_losses.err;
  const std::string exported_header = safetensors_header(exported);
  EXPECT_NE(exported_header.find("loss/"), std::string::npos) << exported_header;
  EXPECT_NE(exported_header.find("memory_student"), std::string::npos);
  EXPECT_NE(exported_header.find("classifier.weight"), std::string::npos) << "and the student's own tensors";
}

TEST(FeatureDistill, ALossFromAnAbi11PluginTrainsWithoutItsHostCallingStateFunctions) {
  TempDir dir;
  dir.write("c.toml", config("[[loss]]\ntype = \"legacy_ce\"\n"));
  const RunResult result = ssld::test::run_program(
      kSsld, {"-q", "train", (dir / "c.toml").string()},
      {{"SSLD_PLUGIN_PATH", std::string(SSLD_TEST_PLUGIN_ROOT) + "/legacy_loss"}});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::ifstream in(dir / "runs" / "t" / "main" / "summary.json");
  EXPECT_GT(nlohmann::json::parse(in).at("result").at("best_top1").get<double>(), 30.0) << "chance is 10%";
}
