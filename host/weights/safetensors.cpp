#include "weights/safetensors.hpp"

#include <ssld/error.hpp>

#include <ATen/ops/empty.h>

#include <nlohmann/json.hpp>

#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <unistd.h>

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

void fsync_path(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

void write_file_atomically(const std::string& path, const std::string& bytes) {
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) throw Error("cannot write '" + temporary + "' (disk full or no permission?)");
  }
  fsync_path(temporary, O_RDONLY);
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) throw Error("cannot rename '" + temporary + "' to '" + path + "': " + error.message());
  const std::string folder = std::filesystem::path(path).parent_path().string();
  fsync_path(folder.empty() ? "." : folder, O_RDONLY | O_DIRECTORY);
}

void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> contiguous;
  size_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    at::Tensor cpu = tensor.detach().to(at::kCPU).contiguous();
    const size_t bytes = cpu.numel() * cpu.element_size();
    header[name] = {{"dtype", dtype_name(cpu.scalar_type())}, {"shape", cpu.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    contiguous.push_back(std::move(cpu));
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // align the data to 8 bytes, as the format allows
  std::string file(8, '\0');
  const uint64_t length = json.size();
  for (int i = 0; i < 8; ++i) file[i] = static_cast<char>((length >> (8 * i)) & 0xFF);
  file += json;
  file.reserve(file.size() + offset);
  for (const auto& tensor : contiguous)
    file.append(static_cast<const char*>(tensor.data_ptr()), tensor.numel() * tensor.element_size());
  write_file_atomically(path, file);
}

TensorFile read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open weights file '" + path + "'");
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  if (bytes.size() < 8) throw Error("'" + path + "' is not a safetensors file (too short)");
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<unsigned char>(bytes[i]);
  if (length > bytes.size() - 8) throw Error("'" + path + "' is not a safetensors file (bad header length)");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.substr(8, length));
  } catch (const std::exception& error) {
    throw Error("'" + path + "' has a malformed safetensors header: " + error.what());
  }
  TensorFile file;
  const size_t data_start = 8 + length;
  // nlohmann::json sorts keys; restore the file's order from the byte offsets.
  std::vector<std::tuple<size_t, std::string, nlohmann::json>> entries;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      for (const auto& [key, value] : entry.items()) file.metadata[key] = value.get<std::string>();
      continue;
    }
    entries.emplace_back(entry.at("data_offsets").at(0).get<size_t>(), name, entry);
  }
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) { return std::get<0>(a) < std::get<0>(b); });
  for (const auto& [begin, name, entry] : entries) {
    const size_t end = entry.at("data_offsets").at(1).get<size_t>();
    const auto shape = entry.at("shape").get<std::vector<int64_t>>();
    at::Tensor tensor = at::empty(shape, dtype_of(entry.at("dtype").get<std::string>(), path));
    const size_t expected = tensor.numel() * tensor.element_size();
    if (end < begin || end - begin != expected || data_start + end > bytes.size())
      throw Error("'" + path + "': tensor '" + name + "' has an inconsistent byte range");
    std::memcpy(tensor.data_ptr(), bytes.data() + data_start + begin, expected);
    file.tensors.emplace_back(name, tensor);
  }
  return file;
}

}  // namespace ssld::host
