// resnet and resnet_d: the ImageNet ResNets of He et al. 2016 as torchvision 0.14 builds them
// (V1.5: a bottleneck strides in its 3x3 conv), and the ResNet-D variant (He et al. 2019, "Bag of
// Tricks"; PaddleClas' ResNet50_vd, the SSLD paper's 79.1 -> 83.0 student) with a 3-conv deep
// stem and an average-pooling shortcut. Module names equal torchvision's and timm's resnetXXd,
// so state dicts move between ssld and PyTorch without renaming.
#include <ssld/features.hpp>
#include <ssld/max_pool.hpp>
#include <ssld/module_student.hpp>
#include <ssld/plugin.hpp>

#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/pooling.h>

#include <torch/utils.h>

#include <ATen/ops/adaptive_avg_pool2d.h>

namespace {

using torch::nn::BatchNorm2d;
using torch::nn::Conv2d;
using torch::nn::Conv2dOptions;
using torch::nn::Sequential;

Conv2d conv3x3(int64_t in, int64_t out, int64_t stride = 1) {
  return Conv2d(Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false));
}
Conv2d conv1x1(int64_t in, int64_t out, int64_t stride = 1) {
  return Conv2d(Conv2dOptions(in, out, 1).stride(stride).bias(false));
}

// torchvision's shortcut when the shape changes: a strided 1x1 conv and BN. ResNet-D's (timm's
// downsample_avg): average-pool first, then an unstrided 1x1 conv, so the shortcut sees every
// pixel instead of a quarter of them; ceil_mode and count_include_pad=false as in timm and
// PaddleClas. Index 0 stays a pool (or Identity) so the keys are downsample.1/.2 either way.
Sequential make_downsample(int64_t in, int64_t out, int64_t stride, bool avg_down) {
  if (!avg_down) return Sequential(conv1x1(in, out, stride), BatchNorm2d(out));
  Sequential shortcut;
  if (stride > 1)
    shortcut->push_back(torch::nn::AvgPool2d(torch::nn::AvgPool2dOptions(2).stride(stride).ceil_mode(true).count_include_pad(false)));
  else
    shortcut->push_back(torch::nn::Identity());
  shortcut->push_back(conv1x1(in, out));
  shortcut->push_back(BatchNorm2d(out));
  return shortcut;
}

struct BasicBlockImpl : torch::nn::Module {
  static constexpr int64_t expansion = 1;
  BasicBlockImpl(int64_t in, int64_t planes, int64_t stride, Sequential shortcut)
      : conv1(register_module("conv1", conv3x3(in, planes, stride))),
        bn1(register_module("bn1", BatchNorm2d(planes))),
        conv2(register_module("conv2", conv3x3(planes, planes))),
        bn2(register_module("bn2", BatchNorm2d(planes))) {
    if (shortcut) downsample = register_module("downsample", shortcut);
  }
  torch::Tensor forward(const torch::Tensor& x) { return forward_pre_relu(x).relu_(); }
  // The block's sum (residual + shortcut) before its last ReLU: OFD's pre-activation feature.
  torch::Tensor forward_pre_relu(const torch::Tensor& x) {
    torch::Tensor out = bn1->forward(conv1->forward(x)).relu_();
    out = bn2->forward(conv2->forward(out));
    out += downsample ? downsample->forward(x) : x;
    return out;
  }
  BatchNorm2d& last_norm() { return bn2; }
  Conv2d conv1;
  BatchNorm2d bn1;
  Conv2d conv2;
  BatchNorm2d bn2;
  Sequential downsample{nullptr};
};
TORCH_MODULE(BasicBlock);

struct BottleneckImpl : torch::nn::Module {
  static constexpr int64_t expansion = 4;
  BottleneckImpl(int64_t in, int64_t planes, int64_t stride, Sequential shortcut)
      : conv1(register_module("conv1", conv1x1(in, planes))),
        bn1(register_module("bn1", BatchNorm2d(planes))),
        conv2(register_module("conv2", conv3x3(planes, planes, stride))),
        bn2(register_module("bn2", BatchNorm2d(planes))),
        conv3(register_module("conv3", conv1x1(planes, planes * expansion))),
        bn3(register_module("bn3", BatchNorm2d(planes * expansion))) {
    if (shortcut) downsample = register_module("downsample", shortcut);
  }
  torch::Tensor forward(const torch::Tensor& x) { return forward_pre_relu(x).relu_(); }
  torch::Tensor forward_pre_relu(const torch::Tensor& x) {
    torch::Tensor out = bn1->forward(conv1->forward(x)).relu_();
    out = bn2->forward(conv2->forward(out)).relu_();
    out = bn3->forward(conv3->forward(out));
    out += downsample ? downsample->forward(x) : x;
    return out;
  }
  BatchNorm2d& last_norm() { return bn3; }
  Conv2d conv1;
  BatchNorm2d bn1;
  Conv2d conv2;
  BatchNorm2d bn2;
  Conv2d conv3;
  BatchNorm2d bn3;
  Sequential downsample{nullptr};
};
TORCH_MODULE(Bottleneck);

struct ResNetConfig {
  int64_t depth = 50;
  int64_t num_classes = 1000;
  bool zero_init_residual = false;
  bool resnet_d = false;  // deep stem and average-pooling shortcut
};

struct ResNetImpl : torch::nn::Module {
  explicit ResNetImpl(const ResNetConfig& config) {
    const bool bottleneck = config.depth >= 50;
    const std::vector<int64_t> blocks = blocks_per_stage(config.depth);
    if (config.resnet_d) {
      // Three 3x3 convs (32, 32, 64 channels) replace the 7x7; ReLU modules hold indices 2 and 5
      // so the keys are conv1.0/.1/.3/.4/.6 as in timm's resnetXXd.
      conv1_stem = register_module(
          "conv1", Sequential(conv3x3(3, 32, 2), BatchNorm2d(32), torch::nn::ReLU(torch::nn::ReLUOptions(true)),
                              conv3x3(32, 32), BatchNorm2d(32), torch::nn::ReLU(torch::nn::ReLUOptions(true)),
                              conv3x3(32, 64)));
    } else {
      conv1 = register_module("conv1", Conv2d(Conv2dOptions(3, 64, 7).stride(2).padding(3).bias(false)));
    }
    bn1 = register_module("bn1", BatchNorm2d(64));
    int64_t channels = 64;
    for (int64_t stage = 0; stage < 4; ++stage) {
      const int64_t planes = int64_t{64} << stage;
      const int64_t stride = stage == 0 ? 1 : 2;
      Sequential layer;
      if (bottleneck)
        channels = add_blocks<Bottleneck>(layer, channels, planes, blocks[stage], stride, config.resnet_d);
      else
        channels = add_blocks<BasicBlock>(layer, channels, planes, blocks[stage], stride, config.resnet_d);
      layers.push_back(register_module("layer" + std::to_string(stage + 1), layer));
    }
    fc = register_module("fc", torch::nn::Linear(channels, config.num_classes));

    // torchvision's init: He (fan_out) for convs, BN at identity; the Linear keeps its default.
    for (auto& module : modules(/*include_self=*/false)) {
      if (auto* conv = module->as<torch::nn::Conv2d>()) {
        torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
      } else if (auto* norm = module->as<torch::nn::BatchNorm2d>()) {
        torch::nn::init::ones_(norm->weight);
        torch::nn::init::zeros_(norm->bias);
      }
    }
    // Goyal et al. 2017: each residual branch starts at zero, so every block starts as identity.
    if (config.zero_init_residual) {
      for (auto& module : modules(/*include_self=*/false)) {
        if (auto* block = module->as<BasicBlockImpl>()) torch::nn::init::zeros_(block->last_norm()->weight);
        if (auto* block = module->as<BottleneckImpl>()) torch::nn::init::zeros_(block->last_norm()->weight);
      }
    }
  }

  static std::vector<int64_t> blocks_per_stage(int64_t depth) {
    switch (depth) {
      case 18: return {2, 2, 2, 2};
      case 34: return {3, 4, 6, 3};
      case 50: return {3, 4, 6, 3};
      case 101: return {3, 4, 23, 3};
      case 152: return {3, 8, 36, 3};
      default: return {};
    }
  }

  template <class Block>
  static int64_t add_blocks(Sequential& layer, int64_t in, int64_t planes, int64_t count, int64_t stride, bool avg_down) {
    const int64_t out = planes * Block::ContainedType::expansion;
    Sequential shortcut{nullptr};
    if (stride != 1 || in != out) shortcut = make_downsample(in, out, stride, avg_down);
    layer->push_back(Block(in, planes, stride, shortcut));
    for (int64_t i = 1; i < count; ++i) layer->push_back(Block(out, planes, 1, Sequential{nullptr}));
    return out;
  }

  torch::Tensor forward(const torch::Tensor& images) {
    torch::Tensor x = conv1 ? conv1->forward(images) : conv1_stem->forward(images);
    x = bn1->forward(x).relu_();
    x = ssld::max_pool2d(x, 3, 2, 1);
    for (auto& layer : layers) x = layer->forward(x);
    x = at::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
    return fc->forward(x);
  }

  // Features (torchvision's node names): "maxpool" (the stem's output), "layer1".."layer4" (each
  // stage's output), "layerN.pre_relu" (the stage's last block before its final ReLU) and
  // "avgpool" (the pooled pre-logits, [N, C] as fc sees them).
  torch::Tensor forward_with(const torch::Tensor& images, ssld::FeatureTap& tap) {
    torch::Tensor x = conv1 ? conv1->forward(images) : conv1_stem->forward(images);
    x = bn1->forward(x).relu_();
    x = ssld::max_pool2d(x, 3, 2, 1);
    tap.keep("maxpool", x);
    for (size_t stage = 0; stage < layers.size(); ++stage) {
      Sequential& layer = layers[stage];
      const std::string name = "layer" + std::to_string(stage + 1);
      for (size_t i = 0; i < layer->size(); ++i) x = run_block(*layer[i], x, /*pre_relu=*/i + 1 == layer->size());
      tap.keep(name + ".pre_relu", x, /*clone_first=*/true);
      x = x.relu_();
      tap.keep(name, x);
    }
    x = at::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
    tap.keep("avgpool", x);
    return fc->forward(x);
  }
  // A block's output, or with `pre_relu` its sum before the final ReLU.
  static torch::Tensor run_block(torch::nn::Module& block, const torch::Tensor& x, bool pre_relu) {
    if (auto* basic = block.as<BasicBlockImpl>()) return pre_relu ? basic->forward_pre_relu(x) : basic->forward(x);
    auto& bottleneck = *block.as<BottleneckImpl>();
    return pre_relu ? bottleneck.forward_pre_relu(x) : bottleneck.forward(x);
  }
  std::vector<std::string> feature_names() const {
    std::vector<std::string> names = {"maxpool"};
    for (size_t stage = 1; stage <= layers.size(); ++stage) {
      names.push_back("layer" + std::to_string(stage));
      names.push_back("layer" + std::to_string(stage) + ".pre_relu");
    }
    names.push_back("avgpool");
    return names;
  }

  Conv2d conv1{nullptr};           // resnet: one 7x7 conv
  Sequential conv1_stem{nullptr};  // resnet_d: the deep stem, registered under the same name
  BatchNorm2d bn1{nullptr};
  std::vector<Sequential> layers;
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(ResNet);

template <bool kResNetD>
class ResNetStudent : public ssld::ModuleStudent<ResNet> {
 public:
  ResNetStudent(const ssld::Options& options, const ssld::Context&)
      : ModuleStudent(build(options), options.get_int("num_classes")) {}

 private:
  static ResNet build(const ssld::Options& options) {
    ResNetConfig config;
    config.depth = options.get_int("depth");
    config.num_classes = options.get_int("num_classes");
    config.zero_init_residual = options.get_bool("zero_init_residual");
    config.resnet_d = kResNetD;
    if (ResNetImpl::blocks_per_stage(config.depth).empty())
      throw ssld::option_error(options, "depth", "depth must be 18, 34, 50, 101 or 152, got " + std::to_string(config.depth));
    if (config.num_classes <= 0)
      throw ssld::option_error(options, "num_classes", "num_classes must be positive, got " + std::to_string(config.num_classes));
    return ResNet(config);
  }
};

ssld::Schema resnet_schema() {
  return ssld::Schema()
      .add_int("depth", 50, "18 or 34 (basic blocks), 50, 101 or 152 (bottlenecks)")
      .add_int("num_classes", 1000, "number of output classes")
      .add_bool("zero_init_residual", false, "start each block's last BN weight at zero (Goyal et al. 2017)");
}

}  // namespace

SSLD_PLUGIN("resnet", "0.1.0", registry) {
  ssld::add_component<ssld::Student, ResNetStudent<false>>(
      registry, "resnet", "ImageNet ResNet-18/34/50/101/152 as torchvision builds it (same state-dict names).",
      resnet_schema());
  ssld::add_component<ssld::Student, ResNetStudent<true>>(
      registry, "resnet_d",
      "ResNet-D (PaddleClas ResNet50_vd): deep 3-conv stem, average-pooling shortcut; timm's resnetXXd names.",
      resnet_schema());
}
