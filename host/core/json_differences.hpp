// What differs between two JSON documents, one line per leaf: how ssld names the keys that
// changed between a stored identity (a cache key, a checkpoint's config) and the current one.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace ssld::host {

// "a.b: x there, y here" for every leaf where two JSON documents differ.
std::vector<std::string> json_differences(const nlohmann::json& there, const nlohmann::json& here,
                                          const std::string& prefix = "");

}  // namespace ssld::host
