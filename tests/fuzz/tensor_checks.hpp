// Reads every byte of the tensors a reader returned, so a tensor whose storage, offset or
// strides reach outside the bytes really held is reported by AddressSanitizer here, not later.
#pragma once

#include <ssld/model.hpp>

#include <ATen/ATen.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace ssld::fuzz {

inline uint64_t touch(const at::Tensor& tensor) {
  if (!tensor.defined() || tensor.numel() == 0) return 0;
  const at::Tensor bytes = tensor.contiguous();
  const auto* data = static_cast<const uint8_t*>(bytes.data_ptr());
  uint64_t sum = 0;
  for (size_t i = 0; i < bytes.nbytes(); ++i) sum += data[i];
  return sum;
}

inline uint64_t touch(const NamedTensors& tensors) {
  uint64_t sum = 0;
  for (const auto& [name, tensor] : tensors) sum += name.size() + touch(tensor);
  return sum;
}

// Small tensors of every dtype the weights files carry, for the seeds; in an order that keeps
// every tensor's offset a multiple of its element size, as read_safetensors requires.
inline NamedTensors sample_tensors() {
  NamedTensors tensors;
  tensors.emplace_back("conv.weight", at::arange(24, at::kFloat).view({2, 3, 2, 2}));
  tensors.emplace_back("conv.bias", at::tensor({0.5f, -1.5f}));
  tensors.emplace_back("bn.running_mean", at::linspace(-1, 1, 3, at::kDouble));
  tensors.emplace_back("bn.num_batches_tracked", at::tensor(int64_t{7}));
  tensors.emplace_back("fc.weight", at::arange(6, at::kFloat).to(at::kHalf).view({2, 3}));
  tensors.emplace_back("fc.bf16", at::arange(4, at::kFloat).to(at::kBFloat16));
  tensors.emplace_back("ids", at::arange(5, at::kInt));
  tensors.emplace_back("empty", at::empty({0, 4}, at::kFloat));
  tensors.emplace_back("mask", at::arange(4, at::kInt).remainder(2).to(at::kBool));
  tensors.emplace_back("bytes", at::arange(8, at::kByte));
  return tensors;
}

// A safetensors file as other writers (Python's safetensors) write it: ssld's writers add a
// digest of every tensor and of the metadata, which a mutated input almost never matches, so
// seeds without them let the fuzzer reach past the checksum check into the rest of the reader.
// The two keys are renamed in place ("note.*", unknown metadata), so the layout stays the same.
inline void strip_ssld_checksums(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  for (const std::string key : {"\"ssld.checksums\"", "\"ssld.metadata_checksum\""})
    if (const size_t at = bytes.find(key); at != std::string::npos) bytes.replace(at + 1, 4, "note");
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace ssld::fuzz
