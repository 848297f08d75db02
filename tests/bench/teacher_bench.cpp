// The teacher alone: images/s of a checkpoint teacher's forward (random weights, random BatchNorm
// statistics) on one batch, as loaded in fp32 and with each optimization ssld offers, and the
// FLOPs of its convolutions and matrix products per image, counted from the shapes of the calls
// the forward makes (2 x multiply-adds), and the rate of a large convolution in fp32 and bf16
// (the CPU's measured peak). Prints JSON; driven by teacher_speed.py.
//
// usage: ssld_bench_teacher 'ARCHITECTURE TABLE' C H W [--batch N] [--seconds S] [--flops-only]
//   --flops-only: the FLOPs per image and the measured peaks, without timing the variants
//   e.g. ssld_bench_teacher 'type = "resnet_d"
//        depth = 50' 3 224 224 --batch 16
#include "cli/command_setup.hpp"
#include "config/config_loader.hpp"
#include "weights/safetensors.hpp"
#include "weights/state_dict.hpp"

#include <ssld/teacher_support.hpp>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <c10/core/GradMode.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

using namespace ssld;
using namespace ssld::host;

namespace {

// FLOPs (2 per multiply-add) of the convolutions and matrix products run while counting.
thread_local double counted_flops = 0;

double elements(const at::IValue& value) {
  return value.isTensor() ? static_cast<double>(value.toTensor().numel()) : 0.0;
}

void count_flops(const at::RecordFunction& call, at::ObserverContext*) {
  const std::string name = call.name();
  const auto inputs = call.inputs();
  const auto outputs = call.outputs();
  if (outputs.empty() || inputs.size() < 2 || !inputs[1].isTensor()) return;
  if (name == "aten::convolution") {
    // output elements x (input channels / groups x kernel area) multiply-adds each.
    const at::Tensor weight = inputs[1].toTensor();
    counted_flops += 2.0 * elements(outputs[0]) * static_cast<double>(weight.numel() / weight.size(0));
  } else if (name == "aten::addmm" || name == "aten::mm") {
    const at::Tensor a = inputs[name == "aten::addmm" ? 1 : 0].toTensor();
    counted_flops += 2.0 * elements(outputs[0]) * static_cast<double>(a.size(-1));
  }
}

double flops_per_image(ssld::Teacher& teacher, const at::Tensor& batch) {
  counted_flops = 0;
  at::RecordFunctionCallback callback(nullptr, count_flops);
  callback.needsInputs(true).needsOutputs(true);
  const auto handle = at::addThreadLocalCallback(callback);
  teacher.forward(batch, {});
  at::removeCallback(handle);
  return counted_flops / static_cast<double>(batch.size(0));
}

double images_per_second(ssld::Teacher& teacher, const at::Tensor& batch, double min_seconds) {
  c10::NoGradGuard no_grad;
  for (int i = 0; i < 2; ++i) teacher.forward(batch, {});  // warm-up (a graph specializes on its first runs)
  const auto start = std::chrono::steady_clock::now();
  int64_t batches = 0;
  double seconds = 0;
  while (batches < 3 || seconds < min_seconds) {
    teacher.forward(batch, {});
    ++batches;
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return static_cast<double>(batches * batch.size(0)) / seconds;
}

// The rate of a large 3x3 convolution (32 x 256 x 28 x 28 in, 256 out, channels_last) in `dtype`:
// what oneDNN reaches on this CPU in practice, a measured peak beside the nominal one. (Not a
// matrix product: Debian's libtorch calls the libblas.so.3 alternative, netlib's reference BLAS
// unless another is installed, while convolutions go to oneDNN.)
double convolution_gflops(at::ScalarType dtype) {
  c10::NoGradGuard no_grad;
  const auto channels_last = at::MemoryFormat::ChannelsLast;
  const at::Tensor input = at::randn({32, 256, 28, 28}).to(dtype).contiguous(channels_last);
  const at::Tensor weight = at::randn({256, 256, 3, 3}).to(dtype).contiguous(channels_last);
  auto convolve = [&] { return at::conv2d(input, weight, {}, 1, 1); };
  convolve();
  const auto start = std::chrono::steady_clock::now();
  int64_t runs = 0;
  double seconds = 0;
  while (runs < 3 || seconds < 1.0) {
    convolve();
    ++runs;
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  const double flops = 2.0 * 32 * 256 * 28 * 28 * 256 * 9;
  return flops * static_cast<double>(runs) / seconds / 1e9;
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s 'ARCHITECTURE TABLE' C H W [--batch N] [--seconds S]\n", argv[0]);
    return 2;
  }
  const std::string architecture = argv[1];
  const std::vector<int64_t> shape = {std::stoll(argv[2]), std::stoll(argv[3]), std::stoll(argv[4])};
  int64_t batch_size = 32;
  double min_seconds = 3;
  bool flops_only = false;
  for (int i = 5; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--flops-only") {
      flops_only = true;
      --i;
      continue;
    }
    if (i + 1 >= argc) throw Error("missing value after " + flag);
    if (flag == "--batch") batch_size = std::stoll(argv[i + 1]);
    else if (flag == "--seconds") min_seconds = std::stod(argv[i + 1]);
    else throw Error("unknown argument " + flag);
  }
  spdlog::set_level(spdlog::level::warn);
  const auto scratch = std::filesystem::temp_directory_path() / ("ssld_bench_teacher_" + std::to_string(getpid()));
  std::filesystem::create_directories(scratch);
  const std::string student_table = "{ " + [&] {
    std::string inline_table;  // "a = 1\nb = 2" -> "a = 1, b = 2"
    for (char c : architecture) inline_table += c == '\n' ? std::string(", ") : std::string(1, c);
    return inline_table;
  }() + " }";
  auto config_with = [&](const std::string& teacher_options) {
    std::ofstream(scratch / "teacher.toml") << "[run]\ndevice = \"cpu\"\n[teacher]\ntype = \"checkpoint\"\nweights = \""
                                            << (scratch / "teacher.safetensors").string() << "\"\nstudent = "
                                            << student_table << "\n" << teacher_options;
    Diagnostics diagnostics;
    auto setup = set_up_command((scratch / "teacher.toml").string(), {}, diagnostics);
    diagnostics.throw_if_any();
    return setup;
  };
  // Random weights with non-trivial BatchNorm statistics, so that folding them has work to do.
  {
    auto setup = config_with("");
    auto architecture_model = setup->factory->create(Kind::Student, setup->root.at("teacher").at("student"), "teacher");
    auto& student = static_cast<Student&>(*architecture_model);
    for (auto& [name, buffer] : student.named_buffers()) {
      if (name.find("running_mean") != std::string::npos) buffer.uniform_(-0.1, 0.1);
      if (name.find("running_var") != std::string::npos) buffer.uniform_(0.5, 1.5);
    }
    write_safetensors((scratch / "teacher.safetensors").string(), state_dict(student), {});
  }
  std::vector<int64_t> batch_shape = {batch_size};
  batch_shape.insert(batch_shape.end(), shape.begin(), shape.end());
  const at::Tensor batch = at::randn(batch_shape);
  const at::Tensor channels_last = batch.contiguous(at::MemoryFormat::ChannelsLast);

  struct Variant {
    const char* name;
    const char* options;
    bool channels_last;
  };
  const Variant variants[] = {
      {"fp32", "optimize = \"off\"", false},
      {"fp32 channels_last", "optimize = \"off\"", true},
      {"fp32 frozen graph", "optimize = \"on\"", false},
      {"bf16", "optimize = \"off\"\nprecision = \"bf16\"", false},  // the teacher makes the batch NHWC
  };
  nlohmann::json rows = nlohmann::json::array();
  at::Tensor reference;
  double flops = 0;
  for (const Variant& variant : variants) {
    if (std::string(variant.name).rfind("bf16", 0) == 0 && !cpu_has_bf16()) continue;
    auto setup = config_with(variant.options);
    auto made = setup->factory->create(Kind::Teacher, setup->root.at("teacher"), "teacher");
    auto& teacher = static_cast<Teacher&>(*made);
    const at::Tensor input = variant.channels_last ? channels_last : batch;
    c10::NoGradGuard no_grad;
    const at::Tensor logits = teacher.forward(input, {}).logits;
    if (!reference.defined()) {
      reference = logits;
      flops = flops_per_image(teacher, input);
      if (flops_only) break;
    }
    const at::Tensor p = reference.log_softmax(1), q = logits.log_softmax(1);
    rows.push_back({{"variant", variant.name},
                    {"images_per_second", images_per_second(teacher, input, min_seconds)},
                    {"max_logit_difference", (logits - reference).abs().max().item<double>()},
                    {"top1_agreement", logits.argmax(1).eq(reference.argmax(1)).to(at::kDouble).mean().item<double>()},
                    {"mean_kl_from_fp32", (p.exp() * (p - q)).sum(1).mean().item<double>()}});
  }
  std::filesystem::remove_all(scratch);
  const nlohmann::json result = {{"threads", at::get_num_threads()},
                                 {"batch_size", batch_size},
                                 {"convolution_gflops_fp32", convolution_gflops(at::kFloat)},
                                 {"convolution_gflops_bf16", cpu_has_bf16() ? convolution_gflops(at::kBFloat16) : 0.0},
                                 {"flops_per_image", flops},
                                 {"cpu_has_bf16", cpu_has_bf16()},
                                 {"variants", rows}};
  std::cout << result.dump() << std::endl;
  return 0;
} catch (const std::exception& error) {
  std::fprintf(stderr, "ssld_bench_teacher: %s\n", error.what());
  return 2;
}
