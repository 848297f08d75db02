// A teacher whose outputs a test knows in advance, for `ssld mine`: an image's mean pixel value
// v (0..255, images not normalized) decides everything. Its class is v % classes and its logit
// for that class is v / 16 (all others 0), so p_max = e^(v/16) / (e^(v/16) + classes - 1) grows
// with v. Feature "embedding" is the flattened image minus its mean (identical images: cosine
// 1). delay_ms slows every forward down, so a test can kill a run halfway.
#include <ssld/plugin.hpp>

#include <ATen/ATen.h>

#include <chrono>
#include <thread>

namespace {

class KnownTeacher : public ssld::Teacher {
 public:
  KnownTeacher(const ssld::Options& options, const ssld::Context&)
      : classes_(options.get_int("classes")), delay_ms_(options.get_int("delay_ms")) {}

  ssld::ModelOutput forward(const at::Tensor& images, const std::vector<std::string>& features) override {
    if (delay_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
    const at::Tensor value = images.flatten(1).mean(1).round().to(at::kLong);
    const at::Tensor predicted = value.remainder(classes_);
    at::Tensor logits = at::zeros({images.size(0), classes_}, images.options().dtype(at::kFloat));
    logits.scatter_(1, predicted.unsqueeze(1), (value.to(at::kFloat) / 16.0).unsqueeze(1));
    ssld::ModelOutput output{logits, {}};
    for (const auto& name : features) {
      if (name != "embedding") throw ssld::Error("known teacher: no feature '" + name + "'");
      const at::Tensor flat = images.flatten(1).to(at::kFloat);
      output.features[name] = flat - flat.mean(1, true);
    }
    return output;
  }
  void to(c10::Device) override {}
  int64_t num_classes() const override { return classes_; }
  std::vector<std::string> feature_names() const override { return {"embedding"}; }
  std::string identity() const override { return "known:" + std::to_string(classes_); }

 private:
  int64_t classes_;
  int64_t delay_ms_;
};

}  // namespace

SSLD_PLUGIN(SSLD_TEST_PLUGIN_NAME, "0.0.1", registry) {
  ssld::add_component<ssld::Teacher, KnownTeacher>(
      registry, "known", "Test teacher: class and confidence follow the image's mean pixel value.",
      ssld::Schema()
          .add_int("classes", 4, "number of classes")
          .add_int("delay_ms", 0, "sleep this long in every forward"));
}
