// Times one stage's training three ways, interleaved in rounds, and prints JSON:
//   end_to_end: the trainer's real loop (loader, device copy, step, logging) for N steps;
//   compute:    TrainingStep::run on one batch already on the device (no loader);
//   minimal:    a hand-written libtorch loop on that batch with the same models and losses
//               (teacher forward, student forward, loss, backward, torch::optim::SGD);
//   teacher:    the teacher's forward alone, for its share of the step.
// end_to_end / compute is the data pipeline's cost; compute / minimal is the host's overhead.
// Driven by train_speed.py, which also runs the python3-torch peer.
//
// Driven by model_zoo_speed.py too (supervised steps of the ImageNet students, no teacher).
//
// usage: ssld_bench_train CONFIG [--steps N] [--rounds R] [--warmup W] [--compute-only] [--set key=value ...]
#include "cli/command_setup.hpp"
#include "data/device_batch.hpp"
#include "data/loader.hpp"
#include "stage/assembly.hpp"
#include "train/trainer.hpp"
#include "weights/safetensors.hpp"
#include "weights/state_dict.hpp"

#include <ATen/Parallel.h>
#include <c10/core/GradMode.h>
#include <torch/optim/sgd.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>

using namespace ssld;
using namespace ssld::host;

namespace {

double seconds(const std::function<void()>& work) {
  const auto start = std::chrono::steady_clock::now();
  work();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CONFIG [--steps N] [--rounds R] [--set key=value ...]\n", argv[0]);
    return 2;
  }
  int64_t steps = 60, rounds = 3, warmup = 5;
  bool compute_only = false;
  std::vector<std::string> overrides;
  for (int i = 2; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--compute-only") {
      compute_only = true;
      --i;
      continue;
    }
    if (i + 1 >= argc) throw Error("missing value after " + flag);
    if (flag == "--steps") steps = std::stoll(argv[i + 1]);
    else if (flag == "--warmup") warmup = std::stoll(argv[i + 1]);
    else if (flag == "--rounds") rounds = std::stoll(argv[i + 1]);
    else if (flag == "--set") overrides.push_back(argv[i + 1]);
    else throw Error("unknown argument " + flag);
  }
  spdlog::set_level(spdlog::level::warn);
  const auto scratch = std::filesystem::temp_directory_path() / ("ssld_bench_train_" + std::to_string(getpid()));
  std::filesystem::create_directories(scratch);

  // Random teacher weights (when the config has a teacher): speed does not depend on their values.
  {
    Diagnostics diagnostics;
    auto setup = set_up_command(argv[1], overrides, diagnostics);
    diagnostics.throw_if_any();
    if (setup->root.contains("teacher")) {
      const std::string teacher_weights = (scratch / "teacher.safetensors").string();
      auto architecture =
          setup->factory->create(Kind::Student, setup->root.at("teacher").at("student"), "teacher.student");
      write_safetensors(teacher_weights, state_dict(static_cast<Student&>(*architecture)), {});
      overrides.push_back("teacher.weights=" + teacher_weights);
    }
  }
  Diagnostics diagnostics;
  auto setup = set_up_command(argv[1], overrides, diagnostics);
  StageComponents stage = assemble_stage(setup->root, *setup->factory, {}, diagnostics);
  diagnostics.throw_if_any();
  Trainer trainer(stage, scratch / "run", setup->device, 0, "bench");

  // One real batch, kept on the device: the compute-only and minimal loops reuse it.
  Loader loader(*stage.train->samples, *stage.train->sampler, stage.train->loader);
  loader.start(0);
  const Batch batch = to_device(*loader.next(), *stage.train, setup->device, 0);
  loader.stop();
  const int64_t batch_size = batch.images.size(0);

  std::vector<at::Tensor> parameters;
  for (auto& [name, tensor] : stage.student->named_parameters()) parameters.push_back(tensor);
  const TrainSettings& settings = stage.settings;
  torch::optim::SGD sgd(parameters, torch::optim::SGDOptions(settings.lr)
                                        .momentum(settings.momentum)
                                        .nesterov(settings.nesterov)
                                        .weight_decay(settings.weight_decay));
  auto minimal_step = [&] {
    ModelOutput teacher_output;
    if (stage.teacher) {
      c10::NoGradGuard no_grad;
      teacher_output = stage.teacher->forward(batch.images, {});
    }
    const ModelOutput student_output = stage.student->forward(batch.images, {});
    at::Tensor total;
    for (auto& term : stage.losses) {
      const at::Tensor value = term.loss->compute(LossInputs{student_output, stage.teacher ? &teacher_output : nullptr,
                                                             batch.labels,
                                                             batch.label_mask, batch.mix_index, batch.mix_lambda})
                                   .value * term.weight;
      total = total.defined() ? total + value : value;
    }
    sgd.zero_grad();
    total.backward();
    sgd.step();
  };

  // Warm-up (allocator, first-call dispatch), then rounds of the three modes.
  for (int64_t i = 0; i < warmup; ++i) {
    trainer.step().run(batch, settings.lr);
    if (!compute_only) minimal_step();
  }
  if (!compute_only) trainer.train_steps(0, warmup);
  std::vector<double> end_to_end, compute, minimal, teacher;
  // The order alternates between rounds so that drift of the machine's speed (other tenants,
  // thermal) does not favour one mode.
  for (int64_t round = 0; round < rounds; ++round) {
    std::vector<std::function<void()>> modes = {
        [&] {
          int64_t images = 0;
          end_to_end.push_back(seconds([&] { images = trainer.train_steps(round + 1, steps); }) /
                               static_cast<double>(images));
        },
        [&] {
          compute.push_back(seconds([&] {
                              for (int64_t i = 0; i < steps; ++i) trainer.step().run(batch, settings.lr);
                            }) / static_cast<double>(steps * batch_size));
        },
        [&] {
          minimal.push_back(seconds([&] {
                              for (int64_t i = 0; i < steps; ++i) minimal_step();
                            }) / static_cast<double>(steps * batch_size));
        },
        [&] {
          if (!stage.teacher) return;
          teacher.push_back(seconds([&] {
                              c10::NoGradGuard no_grad;
                              for (int64_t i = 0; i < steps; ++i) stage.teacher->forward(batch.images, {});
                            }) / static_cast<double>(steps * batch_size));
        }};
    if (compute_only) modes = {modes[1]};
    if (round % 2 == 1) std::reverse(modes.begin(), modes.end());
    for (auto& mode : modes) mode();
  }
  std::filesystem::remove_all(scratch);
  const nlohmann::json result = {{"device", setup->device.str()},
                                 {"threads", at::get_num_threads()},
                                 {"batch_size", batch_size},
                                 {"steps", steps},
                                 {"rounds", rounds},
                                 {"end_to_end_images_per_second", end_to_end.empty() ? 0.0 : 1.0 / median(end_to_end)},
                                 {"compute_images_per_second", 1.0 / median(compute)},
                                 {"minimal_images_per_second", minimal.empty() ? 0.0 : 1.0 / median(minimal)},
                                 {"teacher_forward_images_per_second", teacher.empty() ? 0.0 : 1.0 / median(teacher)}};
  std::cout << result.dump() << std::endl;
  return 0;
} catch (const std::exception& error) {
  std::fprintf(stderr, "ssld_bench_train: %s\n", error.what());
  return 2;
}
