// The training step in-process: the frozen-teacher guard, channels_last and the reduced
// precision fallback on the CPU, a step with non-finite values leaving the weights alone, and
// the fp16 loss scaler's arithmetic.
#include "fmnist_subset.hpp"
#include "plugin_host.hpp"
#include "train/mixed_precision.hpp"
#include "train/teacher_guard.hpp"
#include "train/trainer.hpp"
#include "weights/safetensors.hpp"
#include "weights/state_dict.hpp"

#include <ssld/teacher_support.hpp>

#include <ATen/ATen.h>

#include <gtest/gtest.h>

using ssld::test::PluginHost;

namespace {

// 256 Fashion-MNIST images, a tiny student, the SSLD loss against `teacher`.
std::string stage_config(const std::string& teacher, const std::string& train_extra = "") {
  return R"(
)" + ssld::test::fmnist_data_tables({256, 64, false, false, 0, 0}) + R"([student]
type = "small_cnn"
width = 4
depth = 2
[teacher]
)" + teacher + R"(
[[loss]]
type = "ssld"
[train]
epochs = 2
lr = 0.1
log_every = 1
)" + train_extra;
}

ssld::Batch synthetic_batch(double fill_nan = false) {
  ssld::Batch batch;
  batch.images = at::sin(0.1 * at::arange(16 * 28 * 28, at::kFloat)).view({16, 1, 28, 28});
  if (fill_nan) batch.images[3][0][5][5] = NAN;
  batch.labels = at::full({16}, -1, at::kLong);
  batch.label_mask = at::zeros({16}, at::kBool);
  batch.ids = at::arange(16, at::kLong);
  return batch;
}

ssld::NamedTensors copies(ssld::Student& student) {
  ssld::NamedTensors out;
  for (const auto& [name, tensor] : ssld::host::state_dict(student)) out.emplace_back(name, tensor.clone());
  return out;
}

double max_difference(const ssld::NamedTensors& a, const ssld::NamedTensors& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, (a[i].second.to(at::kDouble) - b[i].second.to(at::kDouble)).abs().max().item<double>());
  return worst;
}

std::string run_error(PluginHost& host, const std::string& teacher) {
  auto stage = host.stage(stage_config(teacher));
  ssld::host::Trainer trainer(stage, host.dir() / "run", c10::Device(c10::kCPU), 0, "test");
  try {
    trainer.run(false);
  } catch (const std::exception& error) {
    return error.what();
  }
  return "";
}

}  // namespace

TEST(TeacherGuard, ATeacherThatChangesItsWeightsStopsTraining) {
  PluginHost host;
  const std::string error = run_error(host, "type = \"faulty\"\nfault = \"drift\"");
  EXPECT_NE(error.find("the teacher's weights changed after epoch 1 ('weight')"), std::string::npos) << error;
}

TEST(TeacherGuard, ATeacherThatTakesGradientsStopsTraining) {
  PluginHost host;
  const std::string error = run_error(host, "type = \"faulty\"\nfault = \"grad\"");
  EXPECT_NE(error.find("the teacher has tensors that take gradients after epoch 1 ('weight')"), std::string::npos)
      << error;
}

TEST(TeacherGuard, ACheckpointTeacherIsUnchangedAndGradientFreeAfterTraining) {
  PluginHost host;
  auto source = host.component<ssld::Student>("type = \"small_cnn\"\nwidth = 8\ndepth = 2", 3);
  const std::string weights = (host.dir() / "teacher.safetensors").string();
  ssld::host::write_safetensors(weights, ssld::host::state_dict(*source), {});
  auto stage = host.stage(stage_config("type = \"checkpoint\"\nweights = \"" + weights +
                                       "\"\nstudent = { type = \"small_cnn\", width = 8, depth = 2 }"));
  std::vector<uint64_t> before;
  for (const auto& [name, tensor] : stage.teacher->named_state()) before.push_back(ssld::host::tensor_digest(tensor));
  ASSERT_EQ(before.size(), 26u);  // 4 convolutions, 4 BatchNorms (5 tensors each), the classifier
  ssld::host::Trainer trainer(stage, host.dir() / "run", c10::Device(c10::kCPU), 0, "test");
  const auto result = trainer.run(false);
  EXPECT_EQ(result.skipped_steps, 0);
  const auto after = stage.teacher->named_state();
  for (size_t i = 0; i < after.size(); ++i) {
    EXPECT_EQ(ssld::host::tensor_digest(after[i].second), before[i]) << after[i].first;
    EXPECT_FALSE(after[i].second.grad().defined()) << after[i].first;
    EXPECT_FALSE(after[i].second.requires_grad()) << after[i].first;
  }
}

TEST(TrainerStep, ChannelsLastComputesTheSameStepsOnTheCpu) {
  PluginHost host;
  auto plain = host.stage(stage_config("type = \"faulty\""));
  auto nhwc = host.stage(stage_config("type = \"faulty\"", "channels_last = true\n"));
  ASSERT_LT(max_difference(copies(*plain.student), copies(*nhwc.student)), 1e-12) << "same seed, same initial weights";
  ssld::host::Trainer a(plain, host.dir() / "a", c10::Device(c10::kCPU), 0, "test");
  ssld::host::Trainer b(nhwc, host.dir() / "b", c10::Device(c10::kCPU), 0, "test");
  bool any_channels_last = false;
  for (const auto& [name, tensor] : nhwc.student->named_parameters())
    any_channels_last |= tensor.dim() == 4 && tensor.is_contiguous(at::MemoryFormat::ChannelsLast) && !tensor.is_contiguous();
  EXPECT_TRUE(any_channels_last) << "convolution weights were not converted";
  for (int i = 0; i < 3; ++i) {
    const auto x = a.step().run(synthetic_batch(), 0.1), y = b.step().run(synthetic_batch(), 0.1);
    ASSERT_TRUE(x.applied() && y.applied());
    EXPECT_NEAR(x.loss, y.loss, 1e-5);
  }
  EXPECT_LT(max_difference(copies(*plain.student), copies(*nhwc.student)), 1e-4);
}

TEST(TrainerStep, ReducedPrecisionFallsBackToFp32OffCuda) {
  PluginHost host;
  auto fp32 = host.stage(stage_config("type = \"faulty\""));
  auto fp16 = host.stage(stage_config("type = \"faulty\"", "precision = \"fp16\"\n"));
  ssld::host::Trainer a(fp32, host.dir() / "a", c10::Device(c10::kCPU), 0, "test");
  ssld::host::Trainer b(fp16, host.dir() / "b", c10::Device(c10::kCPU), 0, "test");
  for (int i = 0; i < 2; ++i) {
    a.step().run(synthetic_batch(), 0.1);
    b.step().run(synthetic_batch(), 0.1);
  }
  EXPECT_EQ(max_difference(copies(*fp32.student), copies(*fp16.student)), 0.0) << "the CPU runs fp32 either way";
}

// precision = "bf16" on the CPU: with bf16 instructions (ssld::cpu_has_bf16) the student's
// forward runs under CPU autocast, so its steps differ from fp32's by bf16 rounding and still
// learn; without them the CPU trains in fp32 exactly.
TEST(TrainerStep, Bf16OnTheCpuAutocastsWhereTheCpuHasBf16) {
  PluginHost host;
  auto fp32 = host.stage(stage_config("type = \"faulty\""));
  auto bf16 = host.stage(stage_config("type = \"faulty\"", "precision = \"bf16\"\n"));
  ssld::host::Trainer a(fp32, host.dir() / "a", c10::Device(c10::kCPU), 0, "test");
  ssld::host::Trainer b(bf16, host.dir() / "b", c10::Device(c10::kCPU), 0, "test");
  double first = 0, last = 0;
  for (int i = 0; i < 8; ++i) {
    const auto x = a.step().run(synthetic_batch(), 0.1), y = b.step().run(synthetic_batch(), 0.1);
    ASSERT_TRUE(x.applied() && y.applied());
    (i == 0 ? first : last) = y.loss;
    if (ssld::cpu_has_bf16()) EXPECT_NEAR(x.loss, y.loss, 0.05 * std::abs(x.loss) + 1e-3) << "step " << i;
  }
  const double difference = max_difference(copies(*fp32.student), copies(*bf16.student));
  if (ssld::cpu_has_bf16()) {
    EXPECT_GT(difference, 0.0) << "the bf16 steps computed exactly what fp32 did: autocast did not run";
    EXPECT_LT(last, first) << "the bf16 student did not learn";
  } else {
    EXPECT_EQ(difference, 0.0) << "without bf16 instructions the CPU trains in fp32";
  }
}

TEST(TrainerStep, ANonFiniteStepChangesNoWeight) {
  PluginHost host;
  auto stage = host.stage(stage_config("type = \"faulty\""));
  ssld::host::Trainer trainer(stage, host.dir() / "run", c10::Device(c10::kCPU), 0, "test");
  const auto before = copies(*stage.student);
  const auto outcome = trainer.step().run(synthetic_batch(/*fill_nan=*/true), 0.1);
  EXPECT_FALSE(outcome.applied());
  EXPECT_FALSE(outcome.loss_finite);
  // BatchNorm statistics saw the NaN in the forward (as in PyTorch); parameters did not move.
  const auto after = copies(*stage.student);
  for (size_t i = 0; i < after.size(); ++i)
    if (after[i].first.find("running_") == std::string::npos && after[i].first.find("num_batches") == std::string::npos)
      EXPECT_TRUE(at::equal(before[i].second, after[i].second)) << after[i].first;
}

TEST(LossScaler, GrowsAfterTheIntervalHalvesOnOverflowAndUnscales) {
  ssld::host::LossScaler scaler(true, 1024.0, 3);
  for (int i = 0; i < 3; ++i) scaler.update(true);
  EXPECT_EQ(scaler.scale(), 2048.0);
  scaler.update(true);
  scaler.update(false);
  EXPECT_EQ(scaler.scale(), 1024.0);
  for (int i = 0; i < 2; ++i) scaler.update(true);
  EXPECT_EQ(scaler.scale(), 1024.0) << "the overflow restarted the count";

  at::Tensor weight = at::ones({2}).set_requires_grad(true);
  scaler.scaled((weight * 3).sum()).backward();
  scaler.unscale({{"w", weight}});
  EXPECT_TRUE(at::allclose(weight.grad(), at::full({2}, 3.0)));

  ssld::host::LossScaler restored(true, 65536.0, 3);
  restored.load_state(scaler.state());
  EXPECT_EQ(restored.scale(), 1024.0);
  restored.update(true);
  EXPECT_EQ(restored.scale(), 2048.0) << "the good-step count was restored too";

  ssld::host::LossScaler off(false, 1024.0, 3);
  EXPECT_EQ(off.scale(), 1.0);
  off.update(false);
  EXPECT_EQ(off.scale(), 1.0);
}

namespace {
std::string entropy_sampler_stage(int epochs) {
  return ssld::test::fmnist_data_tables({256, 64, true, false, 0, 0}) +
         "[data.train.sampler]\ntype = \"test_entropy_order\"\n"
         "[student]\ntype = \"small_cnn\"\nwidth = 4\ndepth = 2\n[[loss]]\ntype = \"ce\"\n[train]\nepochs = " +
         std::to_string(epochs) + "\nlr = 0.1\n";
}
}  // namespace

TEST(Trainer, ACheckpointKeepsTheSamplersStateAndAResumeRestoresIt) {
  PluginHost host;
  auto first = host.stage(entropy_sampler_stage(1));
  ssld::host::Trainer(first, host.dir() / "run", c10::Device(c10::kCPU), 0, "test").run(false);
  const std::string saved = first.train->sampler->state();

  auto second = host.stage(entropy_sampler_stage(2));  // the resume trains the second epoch
  ASSERT_NE(second.train->sampler->state(), saved);    // a fresh draw from std::random_device
  ssld::host::Trainer(second, host.dir() / "run", c10::Device(c10::kCPU), 0, "test").run(true);
  EXPECT_EQ(second.train->sampler->state(), saved);
}
