// A loss plugin that says it was built for SDK ABI 1.1, before losses had state (prepare,
// parameters, buffers, mode, device). A real 1.1 plugin's vtable has no slots for those, so the
// host must never call them: here each aborts, and a run with this loss must train to the end.
#include <ssld/plugin.hpp>

#include <ATen/ATen.h>

#include <cstdlib>

namespace {

// Cross-entropy on the labeled samples, written with ATen only.
class LegacyCrossEntropy : public ssld::Loss {
 public:
  LegacyCrossEntropy(const ssld::Options&, const ssld::Context&) {}
  ssld::LossOutput compute(const ssld::LossInputs& inputs) override {
    const at::Tensor log_probabilities = at::log_softmax(inputs.student.logits.to(at::kFloat), 1);
    const at::Tensor labels = inputs.labels.clamp_min(0).unsqueeze(1);
    const at::Tensor picked = log_probabilities.gather(1, labels).squeeze(1) * inputs.label_mask.to(at::kFloat);
    return {-picked.sum() / inputs.label_mask.sum().clamp_min(1).to(at::kFloat), {}};
  }
  bool needs_teacher() const override { return false; }
  bool uses_labels() const override { return true; }
  void prepare(const ssld::FeatureShapes&, const ssld::FeatureShapes&, int64_t) override { std::abort(); }
  ssld::NamedTensors named_parameters() override { std::abort(); }
  ssld::NamedTensors named_buffers() override { std::abort(); }
  void train(bool) override { std::abort(); }
  void to(c10::Device) override { std::abort(); }
};

void register_components(ssld::Registry& registry) {
  ssld::add_component<ssld::Loss, LegacyCrossEntropy>(registry, "legacy_ce", "cross-entropy from an ABI 1.1 plugin",
                                                      ssld::Schema());
}

}  // namespace

SSLD_PLUGIN_EXPORT const ssld_plugin_info* ssld_plugin_info_v1(void) {
  static const ssld_plugin_info info = [] {
    ssld_plugin_info made = ssld::detail::make_plugin_info(SSLD_TEST_PLUGIN_NAME, "1.1.0");
    made.abi_minor = 1;
    return made;
  }();
  return &info;
}

SSLD_PLUGIN_EXPORT int32_t ssld_plugin_register_v1(void* registry, char* error, uint32_t size) {
  return ssld::detail::run_registration(registry, error, size, &register_components);
}
