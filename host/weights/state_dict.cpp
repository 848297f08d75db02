#include "weights/state_dict.hpp"

#include "weights/safetensors.hpp"
#include "weights/torch_file.hpp"

#include <ssld/error.hpp>

#include <spdlog/spdlog.h>

#include <fnmatch.h>

#include <c10/core/GradMode.h>

#include <filesystem>
#include <map>

namespace ssld::host {

NamedTensors state_dict(Student& student) {
  NamedTensors all = student.named_parameters();
  for (auto& buffer : student.named_buffers()) all.push_back(std::move(buffer));
  return all;
}

namespace {
std::string shape_of(const at::Tensor& tensor) {
  std::string text = "[";
  for (int64_t d = 0; d < tensor.dim(); ++d) text += (d ? ", " : "") + std::to_string(tensor.size(d));
  return text + "]";
}

std::string first_few(const std::vector<std::string>& names) {
  std::string text;
  for (size_t i = 0; i < names.size() && i < 8; ++i) text += (i ? ", " : "") + names[i];
  if (names.size() > 8) text += ", ... (" + std::to_string(names.size()) + " in all)";
  return text;
}
}  // namespace

NamedTensors read_weights(const std::string& path) {
  return looks_like_torch_file(path) ? read_torch_file(path) : read_safetensors(path).tensors;
}

void write_weights(const std::string& path, const NamedTensors& tensors) {
  const std::string extension = std::filesystem::path(path).extension().string();
  if (extension == ".pth" || extension == ".pt") write_torch_file(path, tensors);
  else write_safetensors(path, tensors, {{"format", "ssld-weights-1"}});
}

void load_state_dict(Student& student, const NamedTensors& tensors, const std::string& source,
                     const LoadOptions& options) {
  copy_state(state_dict(student), tensors, source, options);
}

void copy_state(const NamedTensors& targets, const NamedTensors& tensors, const std::string& source,
                const LoadOptions& options) {
  auto ignored = [&](const std::string& name) {
    for (const auto& pattern : options.ignore)
      if (fnmatch(pattern.c_str(), name.c_str(), 0) == 0) return true;
    return false;
  };
  std::map<std::string, at::Tensor> given;
  for (const auto& [name, tensor] : tensors)
    if (!ignored(name)) given.emplace(name, tensor);
  std::vector<std::string> missing, mismatched;
  std::vector<std::pair<at::Tensor, at::Tensor>> copies;
  for (const auto& [name, target] : targets) {
    if (ignored(name)) continue;
    auto found = given.find(name);
    if (found == given.end()) {
      missing.push_back(name);
      continue;
    }
    if (found->second.sizes() != target.sizes())
      mismatched.push_back(name + " " + shape_of(found->second) + " vs " + shape_of(target));
    else
      copies.emplace_back(target, found->second);
    given.erase(found);
  }
  std::vector<std::string> unexpected;
  for (const auto& [name, tensor] : given) unexpected.push_back(name);
  if (!options.strict && mismatched.empty() && (!missing.empty() || !unexpected.empty())) {
    if (!missing.empty()) spdlog::warn("'{}': {} model tensors not in the file keep their initialization: {}", source,
                                       missing.size(), first_few(missing));
    if (!unexpected.empty())
      spdlog::warn("'{}': {} tensors of the file are not in the model: {}", source, unexpected.size(), first_few(unexpected));
    missing.clear();
    unexpected.clear();
  }
  if (!missing.empty() || !mismatched.empty() || !unexpected.empty()) {
    std::string message = "'" + source + "' does not fit this model:";
    if (!missing.empty()) message += " missing " + first_few(missing) + ";";
    if (!unexpected.empty()) message += " unexpected " + first_few(unexpected) + ";";
    if (!mismatched.empty()) message += " shape mismatch (file vs model) " + first_few(mismatched) + ";";
    message.back() = '.';
    throw Error(message + " Was it written for another architecture or other options? (A new head for another class "
                          "count: ignore = [\"fc.*\"]; names missing on one side: strict = false.)");
  }
  c10::NoGradGuard no_grad;
  for (auto& [target, value] : copies) target.copy_(value);  // copy_ converts dtype and device
}

}  // namespace ssld::host
