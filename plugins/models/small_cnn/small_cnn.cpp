// small_cnn: a VGG-style CNN for small grayscale or RGB images (Fashion-MNIST's 28x28): `depth`
// stages of two 3x3 conv-BN-ReLU layers and a 2x2 max-pool, channels doubling from `width`,
// then global average pooling and a linear classifier. Fast enough to distill on a CPU.
#include <ssld/features.hpp>
#include <ssld/max_pool.hpp>
#include <ssld/module_student.hpp>
#include <ssld/plugin.hpp>

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/activation.h>

namespace {

struct SmallCnnImpl : torch::nn::Module {
  SmallCnnImpl(int64_t in_channels, int64_t width, int64_t depth, int64_t num_classes, double dropout) {
    int64_t channels = in_channels;
    for (int64_t stage = 0; stage < depth; ++stage) {
      const int64_t out = width << stage;
      for (int layer = 0; layer < 2; ++layer) {
        features->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, out, 3).padding(1).bias(false)));
        features->push_back(torch::nn::BatchNorm2d(out));
        features->push_back(torch::nn::ReLU(torch::nn::ReLUOptions().inplace(true)));
        channels = out;
      }
      features->push_back(ssld::MaxPool2d(2));
    }
    register_module("features", features);
    dropout_ = register_module("dropout", torch::nn::Dropout(dropout));
    classifier = register_module("classifier", torch::nn::Linear(channels, num_classes));
  }

  torch::Tensor forward(const torch::Tensor& images) {
    torch::Tensor x = features->forward(images);
    x = x.mean({2, 3});  // global average pooling
    return classifier->forward(dropout_->forward(x));
  }

  // Features: the output of every module of `features` ("features.4": stage 1's second
  // BatchNorm, before its ReLU; "features.6": stage 1's pooled output) and "avgpool", the
  // pooled pre-logits [N, C].
  torch::Tensor forward_with(const torch::Tensor& images, ssld::FeatureTap& tap) {
    torch::Tensor x = images;
    size_t i = 0;
    for (auto module = features->begin(); module != features->end(); ++module, ++i) {
      x = module->forward(x);
      // The in-place ReLU after a BatchNorm would overwrite the kept pre-activation.
      const auto* next = i + 1 < features->size() ? features->ptr(i + 1)->as<torch::nn::ReLU>() : nullptr;
      tap.keep("features." + std::to_string(i), x, next && next->options.inplace());
    }
    x = x.mean({2, 3});
    tap.keep("avgpool", x);
    return classifier->forward(dropout_->forward(x));
  }
  std::vector<std::string> feature_names() const {
    std::vector<std::string> names;
    for (size_t i = 0; i < features->size(); ++i) names.push_back("features." + std::to_string(i));
    names.push_back("avgpool");
    return names;
  }

  torch::nn::Sequential features;
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::Linear classifier{nullptr};
};
TORCH_MODULE(SmallCnn);

class SmallCnnStudent : public ssld::ModuleStudent<SmallCnn> {
 public:
  SmallCnnStudent(const ssld::Options& options, const ssld::Context&)
      : ModuleStudent(build(options), options.get_int("num_classes")) {}

 private:
  static SmallCnn build(const ssld::Options& options) {
    auto positive = [&](const char* key) {
      const int64_t value = options.get_int(key);
      if (value <= 0) throw ssld::option_error(options, key, std::string(key) + " must be positive, got " + std::to_string(value));
      return value;
    };
    const int64_t depth = positive("depth");
    if (depth > 5) throw ssld::option_error(options, "depth", "depth " + std::to_string(depth) + " pools a 28x28 image below 1x1; use at most 5");
    const double dropout = options.get_float("dropout");
    if (dropout < 0.0 || dropout >= 1.0) throw ssld::option_error(options, "dropout", "dropout must be in [0, 1)");
    return SmallCnn(positive("in_channels"), positive("width"), depth, positive("num_classes"), dropout);
  }
};

}  // namespace

SSLD_PLUGIN("small_cnn", "0.1.0", registry) {
  ssld::add_component<ssld::Student, SmallCnnStudent>(
      registry, "small_cnn", "A small VGG-style CNN for 28x28 images (Fashion-MNIST), fast on a CPU.",
      ssld::Schema()
          .add_int("num_classes", 10, "number of output classes")
          .add_int("in_channels", 1, "image channels: 1 for grayscale, 3 for RGB")
          .add_int("width", 32, "channels of the first stage; each further stage doubles them")
          .add_int("depth", 2, "number of stages (two 3x3 convs and a 2x2 max-pool each)")
          .add_float("dropout", 0.0, "dropout before the classifier"));
}
