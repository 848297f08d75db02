// What every teacher plugin needs besides its network: the `precision` and `adapter` options
// (one schema fragment, one implementation, so all teachers read them alike), freezing the
// weights in the teacher's arithmetic, and an identity derived from a weights file's bytes.
#pragma once

#include <ssld/error.hpp>
#include <ssld/model.hpp>
#include <ssld/options.hpp>

#include <ATen/ATen.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace ssld {

// Whether this CPU computes bf16 in hardware (the avx512_bf16 or amx_bf16 flags of
// /proc/cpuinfo) and this libtorch has the oneDNN kernels that use them.
inline bool cpu_has_bf16() {
  static const bool has = [] {
    if (!at::hasMKLDNN()) return false;
    std::ifstream cpuinfo("/proc/cpuinfo");
    for (std::string line; std::getline(cpuinfo, line);)
      if (line.rfind("flags", 0) == 0)
        return line.find(" avx512_bf16") != std::string::npos || line.find(" amx_bf16") != std::string::npos;
    return false;
  }();
  return has;
}

// The batch reaches every model normalized for the student. A teacher trained with other
// preprocessing gets its own size and mean/std (the adapter), applied to the same augmented
// image, then the batch is cast to the teacher's precision. Logits come back as float32.
class TeacherInput {
 public:
  // `schema` plus the options TeacherInput reads.
  static Schema with_options(Schema schema) {
    return schema
        .add_string("precision", "fp32",
                    "teacher arithmetic: bf16 on CUDA and on CPUs with AVX512-BF16 or AMX (oneDNN kernels), fp16 on "
                    "CUDA only; fp32 elsewhere",
                    {"fp32", "bf16", "fp16"})
        .add_table("adapter",
                   Schema()
                       .add_int("size", 0, "resize the batch to size x size for the teacher (0: as is)")
                       .add_float_list("mean", {}, "then subtract this per-channel mean (in the batch's units)")
                       .add_float_list("std", {}, "and divide by this per-channel std"),
                   "input adapter for a teacher trained with other preprocessing");
  }

  TeacherInput(const Options& options, const Context& context) {
    const std::string precision = options.get_string("precision");
    if (precision != "fp32") {
      if (context.device().is_cuda()) {
        dtype_ = precision == "bf16" ? at::kBFloat16 : at::kHalf;
      } else if (precision == "bf16" && cpu_has_bf16()) {
        // Measured on a 2-core AMD EPYC (Zen 4, avx512_bf16): 1.8-2.3x the fp32 images/s of
        // small CNNs, ResNet-18 and MobileNetV3 (plugins/teachers/README.md); without the instructions
        // bf16 is emulated and slower, so it falls back below.
        dtype_ = at::kBFloat16;
      } else {
        context.log(LogLevel::Warning, "precision " + precision +
                                           (precision == "bf16" ? " needs CUDA or a CPU with AVX512-BF16 or AMX"
                                                                : " needs CUDA") +
                                           "; this teacher runs in fp32 on " + context.device().str());
      }
    }
    const auto adapter = options.get_table("adapter");
    size_ = adapter->get_int("size");
    if (size_ < 0) throw option_error(*adapter, "size", "adapter size must be 0 (as is) or positive");
    mean_ = adapter->get_float_list("mean");
    std_ = adapter->get_float_list("std");
    if (mean_.size() != std_.size())
      throw option_error(*adapter, "std", "adapter mean and std need the same number of channels");
    for (double value : std_)
      if (value <= 0) throw option_error(*adapter, "std", "adapter std values must be positive");
  }

  at::ScalarType dtype() const { return dtype_; }

  at::Tensor prepare(const at::Tensor& images) const {
    at::Tensor x = images;
    if (size_ > 0 && (x.size(2) != size_ || x.size(3) != size_))
      x = at::upsample_bilinear2d(x, {size_, size_}, /*align_corners=*/false);
    if (!mean_.empty()) {
      if (x.size(1) != static_cast<int64_t>(mean_.size()))
        throw Error("the teacher's adapter has " + std::to_string(mean_.size()) + " channels, the batch " +
                    std::to_string(x.size(1)));
      const auto options = x.options();
      x = (x - at::tensor(mean_, options).view({1, -1, 1, 1})) / at::tensor(std_, options).view({1, -1, 1, 1});
    }
    if (x.scalar_type() != dtype_) x = x.to(dtype_);
    // bf16 on the CPU: oneDNN's AMX and AVX512-BF16 convolutions want NHWC; with NCHW batches
    // they ran ResNet50-vd 2.7x and MobileNetV3-large 2.0x slower (tests/bench/teacher_speed.py).
    if (dtype_ == at::kBFloat16 && x.is_cpu() && x.dim() == 4) x = x.contiguous(at::MemoryFormat::ChannelsLast);
    return x;
  }

  // Float parameters and buffers converted to the teacher's precision, without gradients.
  void freeze(const NamedTensors& parameters, const NamedTensors& buffers) const {
    for (const auto& group : {parameters, buffers})
      for (const auto& [name, tensor] : group) {
        at::Tensor t = tensor;
        if (t.is_floating_point() && t.scalar_type() != dtype_) t.set_data(t.to(dtype_));
        if (t.requires_grad()) t.set_requires_grad(false);
      }
  }

 private:
  at::ScalarType dtype_ = at::kFloat;
  int64_t size_ = 0;
  std::vector<double> mean_, std_;
};

// A digest of a file's bytes (FNV-1a, 64 bits, hex): a teacher's identity changes whenever
// its weights file does.
inline std::string file_digest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot read '" + path + "'");
  uint64_t hash = 14695981039346656037ull;
  std::vector<char> buffer(1 << 16);
  while (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) || in.gcount() > 0)
    for (std::streamsize i = 0; i < in.gcount(); ++i)
      hash = (hash ^ static_cast<unsigned char>(buffer[static_cast<size_t>(i)])) * 1099511628211ull;
  char text[17];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

}  // namespace ssld
