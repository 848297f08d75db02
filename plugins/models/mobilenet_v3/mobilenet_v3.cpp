// mobilenet_v3: MobileNetV3-Large and -Small (Howard et al. 2019) exactly as torchvision 0.14
// builds them (channel rounding, block tables, BN eps 0.001 momentum 0.01, SE with Hardsigmoid,
// init), with torchvision's module names, so its state dicts load in Python unchanged. The SSLD
// paper's MobileNetV3-large student (75.3 -> 79.0 top-1).
#include <ssld/features.hpp>
#include <ssld/module_student.hpp>
#include <ssld/plugin.hpp>

#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/functional.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/utils.h>

#include <ATen/ops/adaptive_avg_pool2d.h>
#include <ATen/ops/hardsigmoid.h>
#include <ATen/ops/hardswish.h>
#include <ATen/ops/relu.h>

#include <algorithm>

namespace {

using torch::nn::Sequential;

// torchvision's (and TF slim's) _make_divisible: round to a multiple of `divisor`, never below
// it, and never more than 10% below `value`.
int64_t make_divisible(double value, int64_t divisor = 8) {
  int64_t rounded = std::max(divisor, static_cast<int64_t>(value + divisor / 2.0) / divisor * divisor);
  if (rounded < 0.9 * value) rounded += divisor;
  return rounded;
}

enum class Activation { None, ReLU, Hardswish };

// libtorch 1.13 has no Hardswish module; a Functional holds the place (and index) of Python's
// nn.Hardswish, which has no parameters either.
torch::nn::AnyModule activation_module(Activation activation) {
  if (activation == Activation::ReLU) return torch::nn::AnyModule(torch::nn::ReLU(torch::nn::ReLUOptions(true)));
  return torch::nn::AnyModule(torch::nn::Functional([](const at::Tensor& x) { return at::hardswish(x); }));
}

// torchvision's Conv2dNormActivation: conv (no bias), BN, then the activation if any, as
// indices 0, 1, 2. A Sequential with a typed forward: libtorch's own has a template forward,
// which cannot sit inside another Sequential.
struct ConvNormActivationImpl : torch::nn::SequentialImpl {
  ConvNormActivationImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups, Activation activation) {
    push_back(torch::nn::Conv2d(
        torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding((kernel - 1) / 2).groups(groups).bias(false)));
    push_back(torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(out).eps(0.001).momentum(0.01)));
    if (activation != Activation::None) push_back(activation_module(activation));
  }
  torch::Tensor forward(const torch::Tensor& x) { return SequentialImpl::forward(x); }
};
TORCH_MODULE(ConvNormActivation);

// torchvision.ops.SqueezeExcitation with scale_activation=Hardsigmoid: 1x1 convs with biases.
struct SqueezeExcitationImpl : torch::nn::Module {
  SqueezeExcitationImpl(int64_t channels, int64_t squeeze)
      : fc1(register_module("fc1", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, squeeze, 1)))),
        fc2(register_module("fc2", torch::nn::Conv2d(torch::nn::Conv2dOptions(squeeze, channels, 1)))) {}
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor scale = at::adaptive_avg_pool2d(x, {1, 1});
    scale = at::hardsigmoid(fc2->forward(at::relu(fc1->forward(scale))));
    return scale * x;
  }
  torch::nn::Conv2d fc1;
  torch::nn::Conv2d fc2;
};
TORCH_MODULE(SqueezeExcitation);

// One row of the paper's Tables 1 and 2, channels before width scaling.
struct BlockConfig {
  int64_t in, kernel, expanded, out;
  bool se;
  bool hardswish;
  int64_t stride;
};

// clang-format off
const std::vector<BlockConfig> kLarge = {
    {16, 3, 16, 16, false, false, 1},   {16, 3, 64, 24, false, false, 2},   {24, 3, 72, 24, false, false, 1},
    {24, 5, 72, 40, true, false, 2},    {40, 5, 120, 40, true, false, 1},   {40, 5, 120, 40, true, false, 1},
    {40, 3, 240, 80, false, true, 2},   {80, 3, 200, 80, false, true, 1},   {80, 3, 184, 80, false, true, 1},
    {80, 3, 184, 80, false, true, 1},   {80, 3, 480, 112, true, true, 1},   {112, 3, 672, 112, true, true, 1},
    {112, 5, 672, 160, true, true, 2},  {160, 5, 960, 160, true, true, 1},  {160, 5, 960, 160, true, true, 1},
};
const std::vector<BlockConfig> kSmall = {
    {16, 3, 16, 16, true, false, 2},    {16, 3, 72, 24, false, false, 2},   {24, 3, 88, 24, false, false, 1},
    {24, 5, 96, 40, true, true, 2},     {40, 5, 240, 40, true, true, 1},    {40, 5, 240, 40, true, true, 1},
    {40, 5, 120, 48, true, true, 1},    {48, 5, 144, 48, true, true, 1},    {48, 5, 288, 96, true, true, 2},
    {96, 5, 576, 96, true, true, 1},    {96, 5, 576, 96, true, true, 1},
};
// clang-format on

// torchvision's InvertedResidual: [expand 1x1] -> depthwise kxk -> [SE] -> project 1x1 (no
// activation), all in `block`; a residual add when the shape is kept.
struct InvertedResidualImpl : torch::nn::Module {
  InvertedResidualImpl(const BlockConfig& c, double width_mult) {
    const int64_t in = make_divisible(c.in * width_mult), expanded = make_divisible(c.expanded * width_mult),
                  out = make_divisible(c.out * width_mult);
    const Activation activation = c.hardswish ? Activation::Hardswish : Activation::ReLU;
    residual = c.stride == 1 && in == out;
    if (expanded != in) block->push_back(ConvNormActivation(in, expanded, 1, 1, 1, activation));
    block->push_back(ConvNormActivation(expanded, expanded, c.kernel, c.stride, expanded, activation));
    if (c.se) block->push_back(SqueezeExcitation(expanded, make_divisible(static_cast<double>(expanded / 4))));
    block->push_back(ConvNormActivation(expanded, out, 1, 1, 1, Activation::None));
    register_module("block", block);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor result = block->forward(x);
    if (residual) result += x;
    return result;
  }
  Sequential block;
  bool residual = false;
};
TORCH_MODULE(InvertedResidual);

struct MobileNetV3Impl : torch::nn::Module {
  MobileNetV3Impl(bool large, double width_mult, int64_t num_classes, double dropout) {
    const std::vector<BlockConfig>& table = large ? kLarge : kSmall;
    const int64_t first = make_divisible(table.front().in * width_mult);
    features->push_back(ConvNormActivation(3, first, 3, 2, 1, Activation::Hardswish));
    for (const auto& row : table) features->push_back(InvertedResidual(row, width_mult));
    const int64_t last_in = make_divisible(table.back().out * width_mult);
    const int64_t last_out = 6 * last_in;
    features->push_back(ConvNormActivation(last_in, last_out, 1, 1, 1, Activation::Hardswish));
    register_module("features", features);

    const int64_t last_channel = make_divisible((large ? 1280 : 1024) * width_mult);
    classifier = register_module(
        "classifier",
        Sequential(torch::nn::Linear(last_out, last_channel),
                   torch::nn::Functional([](const at::Tensor& x) { return at::hardswish(x); }),
                   torch::nn::Dropout(torch::nn::DropoutOptions(dropout)), torch::nn::Linear(last_channel, num_classes)));

    // torchvision's init (its own, not PyTorch's defaults): He fan_out convs with zero bias, BN at
    // identity, Linear N(0, 0.01) with zero bias.
    for (auto& module : modules(/*include_self=*/false)) {
      if (auto* conv = module->as<torch::nn::Conv2d>()) {
        torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut);
        if (conv->bias.defined()) torch::nn::init::zeros_(conv->bias);
      } else if (auto* norm = module->as<torch::nn::BatchNorm2d>()) {
        torch::nn::init::ones_(norm->weight);
        torch::nn::init::zeros_(norm->bias);
      } else if (auto* linear = module->as<torch::nn::Linear>()) {
        torch::nn::init::normal_(linear->weight, 0.0, 0.01);
        torch::nn::init::zeros_(linear->bias);
      }
    }
  }

  torch::Tensor forward(const torch::Tensor& images) {
    torch::Tensor x = at::adaptive_avg_pool2d(features->forward(images), {1, 1}).flatten(1);
    return classifier->forward(x);
  }

  // Features (torchvision's node names): "features.N", the output of each block (the stem
  // conv, every inverted residual, the last 1x1 conv), and "avgpool", the pooled pre-logits
  // [N, C] the classifier sees. Inverted residuals end in a linear BatchNorm, so their outputs
  // are already pre-activation.
  torch::Tensor forward_with(const torch::Tensor& images, ssld::FeatureTap& tap) {
    torch::Tensor x = images;
    size_t i = 0;
    for (auto block = features->begin(); block != features->end(); ++block, ++i) {
      x = block->forward(x);
      tap.keep("features." + std::to_string(i), x);
    }
    x = at::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
    tap.keep("avgpool", x);
    return classifier->forward(x);
  }
  std::vector<std::string> feature_names() const {
    std::vector<std::string> names;
    for (size_t i = 0; i < features->size(); ++i) names.push_back("features." + std::to_string(i));
    names.push_back("avgpool");
    return names;
  }

  Sequential features;
  Sequential classifier{nullptr};
};
TORCH_MODULE(MobileNetV3);

class MobileNetV3Student : public ssld::ModuleStudent<MobileNetV3> {
 public:
  MobileNetV3Student(const ssld::Options& options, const ssld::Context&)
      : ModuleStudent(build(options), options.get_int("num_classes")) {}

 private:
  static MobileNetV3 build(const ssld::Options& options) {
    const double width_mult = options.get_float("width_mult");
    if (width_mult <= 0.0) throw ssld::option_error(options, "width_mult", "width_mult must be positive");
    const int64_t num_classes = options.get_int("num_classes");
    if (num_classes <= 0)
      throw ssld::option_error(options, "num_classes", "num_classes must be positive, got " + std::to_string(num_classes));
    const double dropout = options.get_float("dropout");
    if (dropout < 0.0 || dropout >= 1.0) throw ssld::option_error(options, "dropout", "dropout must be in [0, 1)");
    return MobileNetV3(options.get_string("variant") == "large", width_mult, num_classes, dropout);
  }
};

}  // namespace

SSLD_PLUGIN("mobilenet_v3", "0.1.0", registry) {
  ssld::add_component<ssld::Student, MobileNetV3Student>(
      registry, "mobilenet_v3", "MobileNetV3-Large/Small as torchvision builds it (same state-dict names).",
      ssld::Schema()
          .add_string("variant", "large", "the paper's Large (5.5M parameters) or Small (2.5M) network", {"large", "small"})
          .add_float("width_mult", 1.0, "channel multiplier (0.75 and 1.0 are the paper's); channels round to multiples of 8")
          .add_int("num_classes", 1000, "number of output classes")
          .add_float("dropout", 0.2, "dropout before the last Linear"));
}
