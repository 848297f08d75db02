// The config loader: TOML files, `base = "..."` chains between them (cycles, lists of bases,
// nested folders) and `--set key.path=value` overrides, then what sweeps and the teacher cache
// do with a loaded config (make_location_independent, toml_to_json). The input is split at NUL
// bytes (which TOML text cannot hold) into:
//   run.toml, a.toml, sub/b.toml, then the overrides, one per line
// Seeds: configs with base chains and overrides written here; scripts/fuzz.sh adds the shipped
// configs/ files as run.toml.
#include "config/config_loader.hpp"
#include "config/toml_json.hpp"
#include "fuzz_support.hpp"

#include <vector>

namespace ssld::fuzz {
namespace {

std::string join(const std::vector<std::string>& parts) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? std::string(1, '\0') : "") + parts[i];
  return out;
}

}  // namespace

void write_seeds(const std::filesystem::path& folder) {
  write_text(folder / "base_chain", join({"base = \"a.toml\"\n[student]\ntype = \"small_cnn\"\nwidth = 8\n",
                                          "base = \"sub/b.toml\"\n[train]\nepochs = 3\nlr = 0.1\n",
                                          "[data.train]\nbatch_size = 64\n[[loss]]\ntype = \"ssld\"\nweight = 1.0\n",
                                          "train.epochs=5\nstudent.width=16\nloss.0.weight=0.5\n"}));
  write_text(folder / "base_list", join({"base = [\"a.toml\", \"sub/b.toml\"]\n[run]\nname = \"x\"\nseed = 1\n",
                                         "[teacher]\ntype = \"checkpoint\"\nweights = \"./t.safetensors\"\n",
                                         "[[stage]]\nname = \"s1\"\n[stage.train]\nepochs = 1\n", ""}));
  write_text(folder / "cycle", join({"base = \"a.toml\"\n", "base = \"run.toml\"\n", "", ""}));
  write_text(folder / "overrides",
             join({"[train]\nepochs = 1\nmilestones = [1, 2]\ndate = 1979-05-27T07:32:00Z\n[a.b.c]\nd = { e = 1 }\n", "",
                   "", "train.epochs=2\ntrain.milestones.1=3\nstage.0.train={epochs=1}\nnew.key=[1, 2]\nx=\"q\"\n"}));
}

}  // namespace ssld::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace fuzz = ssld::fuzz;
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == '\0' && parts.size() < 4)
      parts.emplace_back();
    else
      parts.back() += static_cast<char>(data[i]);
  }
  parts.resize(4);
  static const bool made = [] { return std::filesystem::create_directories(fuzz::scratch() / "sub"); }();
  (void)made;
  fuzz::write_text(fuzz::scratch() / "run.toml", parts[0]);
  fuzz::write_text(fuzz::scratch() / "a.toml", parts[1]);
  fuzz::write_text(fuzz::scratch() / "sub" / "b.toml", parts[2]);
  std::vector<std::string> overrides;
  for (size_t start = 0; start < parts[3].size();) {
    size_t end = parts[3].find('\n', start);
    if (end == std::string::npos) end = parts[3].size();
    if (end > start) overrides.push_back(parts[3].substr(start, end - start));
    start = end + 1;
  }
  fuzz::refuse_or_read([&] {
    ssld::host::TomlValue config = ssld::host::load_config(fuzz::scratch() / "run.toml", overrides);
    (void)ssld::host::toml_to_json(config).dump();
    ssld::host::make_location_independent(config);
    (void)ssld::host::toml_to_json(config).dump();
  });
  return 0;
}
