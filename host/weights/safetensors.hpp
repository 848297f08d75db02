// Weights files in the safetensors format (an 8-byte little-endian header length, a JSON
// header naming each tensor's dtype, shape and byte range, then the raw bytes): readable by
// Python's `safetensors` and by any other framework, with no pickle. ssld writes its student
// weights and its checkpoints this way; writes are atomic (temporary file, fsync, rename).
#pragma once

#include <ssld/model.hpp>

#include <map>
#include <string>

namespace ssld::host {

struct TensorFile {
  NamedTensors tensors;                         // in the file's byte order
  std::map<std::string, std::string> metadata;  // the header's "__metadata__"
};

// Throws ssld::Error naming the file for anything unreadable or malformed: a header that is not
// an object, ranges outside the data, overlapping, leaving gaps or misaligned for the dtype, or
// a tensor whose bytes no longer match the checksum ssld wrote beside it (the metadata's
// "ssld.checksums", which `metadata` does not return).
TensorFile read_safetensors(const std::string& path);

// Contiguous CPU copies of `tensors` are written with a checksum per tensor, wider dtypes first
// (so each is aligned); a crash leaves either the old file or the new one, never a torn one.
void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace ssld::host
