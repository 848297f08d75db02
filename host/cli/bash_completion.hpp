// `ssld completion bash`: a bash completion script generated from the command line's own
// definitions (subcommands, their options, which options take a value), so it never drifts from
// them. `cmake --install` puts it in share/bash-completion/completions/ssld.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace ssld::host {

std::string bash_completion(const CLI::App& app);

}  // namespace ssld::host
