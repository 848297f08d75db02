// One 64-bit digest of a tensor's values, used wherever ssld checks that bytes are what it
// wrote or saw: frozen teacher weights, checkpoint and weight files, teacher-cache records.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace ssld::host {

// Of the values (not the device or memory layout).
uint64_t tensor_digest(const at::Tensor& tensor);

// Of raw bytes, the same function: tensor_digest(t) == bytes_digest(t's contiguous CPU bytes).
uint64_t bytes_digest(const void* data, size_t size);

// 16 lowercase hex digits, as stored in files.
std::string digest_hex(uint64_t digest);

}  // namespace ssld::host
