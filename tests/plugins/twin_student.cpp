// Two plugin libraries (twin_a, twin_b) built from this file both register the student
// "twin": the host must refuse the second and name both files. Also the plugin the factory
// error test uses: its student throws for `fail = true`.
#include <ssld/plugin.hpp>

#include <stdexcept>

namespace {
class TwinStudent : public ssld::Student {
 public:
  TwinStudent(const ssld::Options& options, const ssld::Context&) {
    if (options.get_bool("fail")) throw ssld::option_error(options, "fail", "asked to fail");
  }
  ssld::ModelOutput forward(const at::Tensor& images, const std::vector<std::string>&) override { return {images, {}}; }
  ssld::NamedTensors named_parameters() override { return {}; }
  ssld::NamedTensors named_buffers() override { return {}; }
  void train(bool) override {}
  void to(c10::Device) override {}
  int64_t num_classes() const override { return 1; }
};
}  // namespace

SSLD_PLUGIN(SSLD_TEST_PLUGIN_NAME, "1.0.0", registry) {
  ssld::add_component<ssld::Student, TwinStudent>(
      registry, "twin", "A student registered by two plugins.",
      ssld::Schema().add_bool("fail", false, "throw from the constructor"));
}
