// The training step in-process: the frozen-teacher guard, channels_last and the reduced
// precision fallback on the CPU, a step with non-finite values leaving the weights alone (a
// masked update equal to a step never taken), no host reads between log steps, the step
// tally, and the fp16 loss scaler's arithmetic.
#include "fmnist_subset.hpp"
#include "plugin_host.hpp"
#include "train/mixed_precision.hpp"
#include "train/optimization.hpp"
#include "train/step_tally.hpp"
#include "train/teacher_guard.hpp"
#include "train/trainer.hpp"
#include "weights/safetensors.hpp"
#include "weights/state_dict.hpp"

#include <ssld/host_value_reads.hpp>
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
    ASSERT_TRUE(x.was_applied() && y.was_applied());
    EXPECT_NEAR(x.loss(), y.loss(), 1e-5);
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
    ASSERT_TRUE(x.was_applied() && y.was_applied());
    (i == 0 ? first : last) = y.loss();
    if (ssld::cpu_has_bf16()) EXPECT_NEAR(x.loss(), y.loss(), 0.05 * std::abs(x.loss()) + 1e-3) << "step " << i;
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
  EXPECT_FALSE(outcome.was_applied());
  EXPECT_FALSE(outcome.loss_was_finite());
  // BatchNorm statistics saw the NaN in the forward (as in PyTorch); parameters did not move.
  const auto after = copies(*stage.student);
  for (size_t i = 0; i < after.size(); ++i)
    if (after[i].first.find("running_") == std::string::npos && after[i].first.find("num_batches") == std::string::npos)
      EXPECT_TRUE(at::equal(before[i].second, after[i].second)) << after[i].first;
}

// The masked update: a step skipped on the device (the teacher's logits were NaN, so the loss
// was) leaves the parameters, the optimizer's state and the EMA exactly as a run that never took
// the step, bit for bit, for SGD (Nesterov, weight decay, clipping) and AdamW alike.
TEST(TrainerStep, ASkippedStepIsExactlyAStepNeverTaken) {
  for (const std::string optimizer : {"optimizer = \"sgd\"\nmomentum = 0.9\nnesterov = true\n", "optimizer = \"adamw\"\n"}) {
    PluginHost host;
    const std::string train = optimizer + "weight_decay = 0.01\nclip_grad_norm = 0.5\nema_decay = 0.9\n";
    auto skipping = host.stage(stage_config("type = \"faulty\"\nnan_calls = [1, 3]", train));
    auto straight = host.stage(stage_config("type = \"faulty\"", train));
    ssld::host::Trainer a(skipping, host.dir() / "a", c10::Device(c10::kCPU), 0, "test");
    ssld::host::Trainer b(straight, host.dir() / "b", c10::Device(c10::kCPU), 0, "test");
    ssld::Batch batches[3] = {synthetic_batch(), synthetic_batch(), synthetic_batch()};
    batches[1].images = batches[1].images.flip(3);
    batches[2].images = batches[2].images * 0.5;
    // a: b0, (skipped), b1, (skipped), b2. b: b0, b1, b2.
    for (int call = 0, next = 0; call < 5; ++call) {
      const bool skipped = call == 1 || call == 3;
      const auto outcome = a.step().run(batches[next], 0.1);
      EXPECT_EQ(outcome.was_applied(), !skipped) << optimizer << " call " << call;
      if (!skipped) ASSERT_TRUE(b.step().run(batches[next++], 0.1).was_applied());
    }
    // BatchNorm's running statistics saw the skipped steps' images (as in PyTorch); everything
    // the update writes did not.
    const auto a_parameters = skipping.student->named_parameters(), b_parameters = straight.student->named_parameters();
    for (size_t i = 0; i < a_parameters.size(); ++i)
      EXPECT_TRUE(at::equal(a_parameters[i].second, b_parameters[i].second)) << optimizer << " " << a_parameters[i].first;
    const auto a_state = a.step().optimizer().state(), b_state = b.step().optimizer().state();
    ASSERT_EQ(a_state.size(), b_state.size());
    for (size_t i = 0; i < a_state.size(); ++i)
      EXPECT_TRUE(at::equal(a_state[i].second, b_state[i].second)) << optimizer << " " << a_state[i].first;
    EXPECT_EQ(a_state[0].second.item<int64_t>(), 3) << "optimizer/steps counts applied steps";
    const auto& a_ema = a.step().ema()->tensors();
    const auto& b_ema = b.step().ema()->tensors();
    for (size_t i = 0; i < a_ema.size(); ++i)
      if (a_ema[i].first.find("running_") == std::string::npos && a_ema[i].first.find("num_batches") == std::string::npos)
        EXPECT_TRUE(at::equal(a_ema[i].second, b_ema[i].second)) << optimizer << " ema " << a_ema[i].first;
  }
}


// The trainer's real loop (loader, device copy, step, tally, report) reads nothing of the steps
// on the host between log steps: no item()/bool() in the steps, and one read of the step tally
// when the window ends. The losses it then logs are the steps' own.
TEST(Trainer, StepsBetweenLogStepsReadNothingOnTheHost) {
  PluginHost host;
  std::string config = stage_config("type = \"faulty\"", "clip_grad_norm = 1.0\nema_decay = 0.9\n");
  config.replace(config.find("log_every = 1\n"), 14, "log_every = 100\n");
  auto stage = host.stage(config);
  ssld::host::Trainer trainer(stage, host.dir() / "run", c10::Device(c10::kCPU), 0, "test");
  const int64_t tally_reads = ssld::host::StepTally::host_reads();
  {
    const ssld::HostValueReadCounter counter;
    EXPECT_EQ(trainer.train_steps(0, 3), 3 * 64);  // 3 steps of a window of 100: read once, at the stop
    EXPECT_EQ(counter.count(), 0) << "a step read a value on the host";
  }
  EXPECT_EQ(ssld::host::StepTally::host_reads() - tally_reads, 1);
  // The control: an item() is seen by the counter.
  const ssld::HostValueReadCounter control;
  (void)at::ones({1}).item<float>();
  EXPECT_GT(control.count(), 0);
}

// The step tally's arithmetic: sums over applied steps only, skipped steps by cause, fp16
// overflows apart, and the run of failed steps across reads.
TEST(StepTally, SumsAppliedStepsAndCountsFailedRuns) {
  ssld::host::StepTally tally(2, c10::Device(c10::kCPU));
  auto outcome = [](float total, bool loss_finite, bool applied) {
    ssld::host::StepOutcome o;
    o.values = at::tensor({total, total / 2, loss_finite ? total / 4 : NAN});
    o.loss_finite = at::scalar_tensor(loss_finite, at::kBool);
    o.applied = at::scalar_tensor(applied, at::kBool);
    return o;
  };
  tally.add(outcome(1, true, true), false);
  tally.add(outcome(NAN, false, false), false);
  tally.add(outcome(5, true, false), false);  // a non-finite gradient
  tally.add(outcome(5, true, false), true);   // an fp16 overflow: the run neither grows nor ends
  auto first = tally.read();
  EXPECT_EQ(first.steps, 4);
  EXPECT_EQ(first.applied, 1);
  EXPECT_EQ(first.loss_nonfinite, 1);
  EXPECT_EQ(first.gradient_nonfinite, 1);
  EXPECT_EQ(first.overflow, 1);
  EXPECT_EQ(first.failed_run, 2);
  EXPECT_EQ(first.longest_failed_run, 2);
  EXPECT_EQ(first.loss_sum, 1.0);
  EXPECT_EQ(first.term_sums, (std::vector<double>{0.5, 0.25}));
  tally.add(outcome(NAN, false, false), false);
  tally.add(outcome(2, true, true), false);
  const auto second = tally.read();
  EXPECT_EQ(second.longest_failed_run, 3) << "the run carried over the read";
  EXPECT_EQ(second.failed_run, 0);
  EXPECT_EQ(second.loss_sum, 2.0);
  tally.set_failed_run(7);
  tally.add(outcome(NAN, false, false), false);
  EXPECT_EQ(tally.read().failed_run, 8) << "a resumed run's count goes on";
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
