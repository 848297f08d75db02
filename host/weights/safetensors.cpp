#include "weights/safetensors.hpp"

#include "core/atomic_file.hpp"
#include "core/bounded_input.hpp"
#include "core/tensor_digest.hpp"

#include <ssld/error.hpp>

#include <ATen/ops/empty.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <limits>
#include <tuple>

namespace ssld::host {

namespace {

struct DtypeName {
  at::ScalarType type;
  const char* name;
};
constexpr DtypeName kDtypes[] = {
    {at::kFloat, "F32"}, {at::kDouble, "F64"}, {at::kHalf, "F16"}, {at::kBFloat16, "BF16"}, {at::kLong, "I64"},
    {at::kInt, "I32"},   {at::kShort, "I16"},  {at::kChar, "I8"},  {at::kByte, "U8"},       {at::kBool, "BOOL"},
};

const char* dtype_name(at::ScalarType type) {
  for (const auto& entry : kDtypes)
    if (entry.type == type) return entry.name;
  throw Error(std::string("safetensors cannot store tensors of type ") + c10::toString(type));
}

at::ScalarType dtype_of(const std::string& name, const std::string& path) {
  for (const auto& entry : kDtypes)
    if (name == entry.name) return entry.type;
  throw Error(path + ": unsupported safetensors dtype '" + name + "'");
}

// ssld's writers list each tensor's digest here (a JSON object name -> 16 hex digits), so a
// flipped byte is refused naming the tensor; files from elsewhere simply have none.
constexpr const char* kChecksumsKey = "ssld.checksums";
// And one digest of every other metadata entry (the checksums included): a flipped byte in a
// checkpoint's epoch or step is refused too.
constexpr const char* kMetadataChecksumKey = "ssld.metadata_checksum";

std::string metadata_digest(const std::map<std::string, std::string>& metadata) {
  std::string text;
  for (const auto& [key, value] : metadata)
    if (key != kMetadataChecksumKey) text += key + '\0' + value + '\0';
  return digest_hex(bytes_digest(text.data(), text.size()));
}

// The format's own header limit (the reference implementation refuses more than 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

[[noreturn]] void malformed(const std::string& path, const std::string& what) {
  throw Error("'" + path + "' is not a valid safetensors file: " + what);
}

}  // namespace

void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  // Wider elements first (stable, as Python's writer orders them): every tensor then starts
  // aligned to its element size without padding, which the format does not allow.
  std::vector<at::Tensor> contiguous;
  std::vector<size_t> order;
  for (const auto& [name, tensor] : tensors) {
    order.push_back(contiguous.size());
    contiguous.push_back(tensor.detach().to(at::kCPU).contiguous());
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return contiguous[a].element_size() > contiguous[b].element_size(); });
  nlohmann::ordered_json ordered = nlohmann::ordered_json::object();
  ordered["__metadata__"] = nullptr;  // first, as the Python writer puts it; filled below
  nlohmann::ordered_json checksums = nlohmann::ordered_json::object();
  size_t offset = 0;
  for (const size_t index : order) {
    const std::string& name = tensors[index].first;
    const at::Tensor& cpu = contiguous[index];
    const size_t bytes = cpu.numel() * cpu.element_size();
    checksums[name] = digest_hex(bytes_digest(cpu.data_ptr(), bytes));
    ordered[name] = {{"dtype", dtype_name(cpu.scalar_type())}, {"shape", cpu.sizes().vec()},
                     {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::map<std::string, std::string> stored = metadata;
  stored[kChecksumsKey] = checksums.dump();
  stored[kMetadataChecksumKey] = metadata_digest(stored);
  ordered["__metadata__"] = stored;
  std::string json = ordered.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // align the data to 8 bytes, as the format allows
  std::string file(8, '\0');
  const uint64_t length = json.size();
  for (int i = 0; i < 8; ++i) file[i] = static_cast<char>((length >> (8 * i)) & 0xFF);
  file += json;
  file.reserve(file.size() + offset);
  for (const size_t index : order)
    file.append(static_cast<const char*>(contiguous[index].data_ptr()),
                contiguous[index].numel() * contiguous[index].element_size());
  write_file_atomically(path, file);
}

TensorFile read_safetensors(const std::string& path) {
  const std::string bytes = read_regular_file(path, std::numeric_limits<uint64_t>::max(), "weights file");
  if (bytes.size() < 8) malformed(path, "shorter than its 8-byte header length");
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<unsigned char>(bytes[i]);
  if (length > bytes.size() - 8 || length > kMaxHeaderBytes)
    malformed(path, "its header length " + std::to_string(length) + " exceeds the file's " +
                        std::to_string(bytes.size()) + " bytes (or the format's 100 MB)");
  const nlohmann::json header = parse_json(std::string_view(bytes).substr(8, length), "'" + path + "' header");
  if (!header.is_object()) malformed(path, "its header is a JSON " + std::string(header.type_name()) + ", not an object");
  TensorFile file;
  const uint64_t data_size = bytes.size() - 8 - length;
  const char* data = bytes.data() + 8 + length;
  struct Entry {
    uint64_t begin, end;
    std::string name;
    at::ScalarType dtype;
    std::vector<int64_t> shape;
  };
  std::vector<Entry> entries;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) malformed(path, "__metadata__ is a " + std::string(entry.type_name()) + ", not an object");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) malformed(path, "__metadata__ '" + key + "' is not a string");
        file.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "' ";
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets"))
      malformed(path, where + "needs an object with dtype, shape and data_offsets");
    const auto& dtype = entry.at("dtype");
    const auto& shape = entry.at("shape");
    const auto& offsets = entry.at("data_offsets");
    if (!dtype.is_string()) malformed(path, where + "has a dtype that is not a string");
    if (!shape.is_array() || shape.size() > 64) malformed(path, where + "has a shape that is not a list of sizes");
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned())
      malformed(path, where + "has data_offsets that are not two non-negative integers");
    Entry parsed{offsets[0].get<uint64_t>(), offsets[1].get<uint64_t>(), name, dtype_of(dtype.get<std::string>(), path), {}};
    uint64_t expected = c10::elementSize(parsed.dtype);
    for (const auto& size : shape) {
      if (!size.is_number_unsigned()) malformed(path, where + "has a size that is not a non-negative integer");
      const uint64_t value = size.get<uint64_t>();
      if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) || __builtin_mul_overflow(expected, value, &expected))
        malformed(path, where + "has a shape whose size overflows");
      parsed.shape.push_back(static_cast<int64_t>(value));
    }
    if (parsed.end < parsed.begin || parsed.end > data_size || parsed.end - parsed.begin != expected)
      malformed(path, where + "has the byte range [" + std::to_string(parsed.begin) + ", " + std::to_string(parsed.end) +
                          ") for " + std::to_string(expected) + " bytes of data, in a data section of " +
                          std::to_string(data_size));
    if (parsed.begin % c10::elementSize(parsed.dtype) != 0)
      malformed(path, where + "starts at byte " + std::to_string(parsed.begin) + ", not aligned to its " +
                          std::to_string(c10::elementSize(parsed.dtype)) + "-byte elements");
    entries.push_back(std::move(parsed));
  }
  // The file's order is the byte order (nlohmann::json sorts keys); ranges tile the data section.
  std::stable_sort(entries.begin(), entries.end(),
                   [](const Entry& a, const Entry& b) { return std::tie(a.begin, a.end) < std::tie(b.begin, b.end); });
  uint64_t covered = 0;
  for (const auto& entry : entries) {
    if (entry.begin != covered)
      malformed(path, "tensor '" + entry.name + "' " +
                          (entry.begin < covered ? "overlaps the tensor before it" : "leaves a gap before it") +
                          " (byte " + std::to_string(entry.begin) + ", expected " + std::to_string(covered) + ")");
    covered = entry.end;
  }
  if (covered != data_size)
    malformed(path, std::to_string(data_size - covered) + " bytes after the last tensor belong to none (truncated "
                    "header or appended data)");
  if (auto found = file.metadata.find(kMetadataChecksumKey); found != file.metadata.end()) {
    const std::string actual = metadata_digest(file.metadata);
    if (found->second != actual)
      throw Error("'" + path + "' is damaged: its metadata does not match its checksum (" + found->second +
                  " written, " + actual + " read). Restore the file from a copy, or delete it and run again");
  }
  nlohmann::json checksums;
  if (auto found = file.metadata.find(kChecksumsKey); found != file.metadata.end()) {
    checksums = parse_json(found->second, "'" + path + "' checksums");
    if (!checksums.is_object()) malformed(path, std::string(kChecksumsKey) + " is not an object");
  }
  for (const auto& entry : entries) {
    const char* begin = data + entry.begin;
    if (checksums.contains(entry.name)) {
      const auto& stored = checksums.at(entry.name);
      const std::string actual = digest_hex(bytes_digest(begin, entry.end - entry.begin));
      if (!stored.is_string() || stored.get<std::string>() != actual)
        throw Error("'" + path + "' is damaged: tensor '" + entry.name + "' does not match its checksum (" +
                    (stored.is_string() ? stored.get<std::string>() : stored.dump()) + " written, " + actual +
                    " read). Restore the file from a copy, or delete it and run again");
    }
    at::Tensor tensor = at::empty(entry.shape, entry.dtype);
    if (entry.end > entry.begin) std::memcpy(tensor.data_ptr(), begin, entry.end - entry.begin);
    file.tensors.emplace_back(entry.name, tensor);
  }
  file.metadata.erase(kChecksumsKey);
  file.metadata.erase(kMetadataChecksumKey);
  return file;
}

}  // namespace ssld::host
