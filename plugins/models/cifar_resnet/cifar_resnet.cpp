// cifar_resnet: the CIFAR ResNets of He et al. 2016 (section 4.2): depth = 6n + 2 (20, 32, 44,
// 56, 110), three stages of n basic blocks at width, 2x and 4x width, a 3x3 stem without
// pooling, global average pooling and a linear classifier. Downsampling shortcuts are 1x1
// conv + BN (option B). Names follow torchvision's ResNet (conv1, bn1, layerN.i.conv1, fc).
#include <ssld/features.hpp>
#include <ssld/module_student.hpp>
#include <ssld/plugin.hpp>

#include <torch/torch.h>

namespace {

struct BasicBlockImpl : torch::nn::Module {
  BasicBlockImpl(int64_t in, int64_t out, int64_t stride)
      : conv1(register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(1).bias(false)))),
        bn1(register_module("bn1", torch::nn::BatchNorm2d(out))),
        conv2(register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(out, out, 3).padding(1).bias(false)))),
        bn2(register_module("bn2", torch::nn::BatchNorm2d(out))) {
    if (stride != 1 || in != out) {
      downsample = register_module(
          "downsample", torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1).stride(stride).bias(false)),
                                              torch::nn::BatchNorm2d(out)));
    }
  }
  torch::Tensor forward(const torch::Tensor& x) { return torch::relu(forward_pre_relu(x)); }
  // The block's sum (residual + shortcut) before its last ReLU: OFD's pre-activation feature.
  torch::Tensor forward_pre_relu(const torch::Tensor& x) {
    torch::Tensor out = torch::relu(bn1->forward(conv1->forward(x)));
    out = bn2->forward(conv2->forward(out));
    return out + (downsample ? downsample->forward(x) : x);
  }
  torch::nn::Conv2d conv1;
  torch::nn::BatchNorm2d bn1;
  torch::nn::Conv2d conv2;
  torch::nn::BatchNorm2d bn2;
  torch::nn::Sequential downsample{nullptr};
};
TORCH_MODULE(BasicBlock);

struct CifarResNetImpl : torch::nn::Module {
  CifarResNetImpl(int64_t in_channels, int64_t blocks, int64_t width, int64_t num_classes)
      : conv1(register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, width, 3).padding(1).bias(false)))),
        bn1(register_module("bn1", torch::nn::BatchNorm2d(width))) {
    int64_t channels = width;
    for (int64_t stage = 0; stage < 3; ++stage) {
      torch::nn::Sequential layer;
      const int64_t out = width << stage;
      for (int64_t block = 0; block < blocks; ++block) {
        layer->push_back(BasicBlock(channels, out, block == 0 && stage > 0 ? 2 : 1));
        channels = out;
      }
      layers.push_back(register_module("layer" + std::to_string(stage + 1), layer));
    }
    fc = register_module("fc", torch::nn::Linear(channels, num_classes));
    for (auto& module : modules(/*include_self=*/false)) {  // He initialization, BN at identity
      if (auto* conv = module->as<torch::nn::Conv2d>())
        torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanOut, torch::kReLU);
    }
  }
  torch::Tensor forward(const torch::Tensor& images) {
    torch::Tensor x = torch::relu(bn1->forward(conv1->forward(images)));
    for (auto& layer : layers) x = layer->forward(x);
    return fc->forward(x.mean({2, 3}));
  }

  // Features: "relu" (the stem's output), "layer1".."layer3" (each stage's output),
  // "layerN.pre_relu" (the stage's last block before its final ReLU) and "avgpool" (the pooled
  // pre-logits [N, C]).
  torch::Tensor forward_with(const torch::Tensor& images, ssld::FeatureTap& tap) {
    torch::Tensor x = torch::relu(bn1->forward(conv1->forward(images)));
    tap.keep("relu", x);
    for (size_t stage = 0; stage < layers.size(); ++stage) {
      torch::nn::Sequential& layer = layers[stage];
      const std::string name = "layer" + std::to_string(stage + 1);
      for (size_t i = 0; i + 1 < layer->size(); ++i) x = layer[i]->as<BasicBlockImpl>()->forward(x);
      x = layer[layer->size() - 1]->as<BasicBlockImpl>()->forward_pre_relu(x);
      tap.keep(name + ".pre_relu", x);
      x = torch::relu(x);
      tap.keep(name, x);
    }
    x = x.mean({2, 3});
    tap.keep("avgpool", x);
    return fc->forward(x);
  }
  std::vector<std::string> feature_names() const {
    std::vector<std::string> names = {"relu"};
    for (size_t stage = 1; stage <= layers.size(); ++stage) {
      names.push_back("layer" + std::to_string(stage));
      names.push_back("layer" + std::to_string(stage) + ".pre_relu");
    }
    names.push_back("avgpool");
    return names;
  }
  torch::nn::Conv2d conv1;
  torch::nn::BatchNorm2d bn1;
  std::vector<torch::nn::Sequential> layers;
  torch::nn::Linear fc{nullptr};
};
TORCH_MODULE(CifarResNet);

class CifarResNetStudent : public ssld::ModuleStudent<CifarResNet> {
 public:
  CifarResNetStudent(const ssld::Options& options, const ssld::Context&)
      : ModuleStudent(build(options), options.get_int("num_classes")) {}

 private:
  static CifarResNet build(const ssld::Options& options) {
    const int64_t depth = options.get_int("depth");
    if (depth < 8 || (depth - 2) % 6 != 0)
      throw ssld::option_error(options, "depth", "depth must be 6n + 2 (20, 32, 44, 56, 110), got " + std::to_string(depth));
    if (options.get_int("width") <= 0 || options.get_int("num_classes") <= 0 || options.get_int("in_channels") <= 0)
      throw ssld::option_error(options, "width", "width, in_channels and num_classes must be positive");
    return CifarResNet(options.get_int("in_channels"), (depth - 2) / 6, options.get_int("width"), options.get_int("num_classes"));
  }
};

}  // namespace

SSLD_PLUGIN("cifar_resnet", "0.1.0", registry) {
  ssld::add_component<ssld::Student, CifarResNetStudent>(
      registry, "cifar_resnet", "CIFAR-style ResNet (He et al. 2016): depth 6n+2, 3x3 stem, three stages, for small images.",
      ssld::Schema()
          .add_int("depth", 20, "6n + 2: 20, 32, 44, 56, 110")
          .add_int("width", 16, "channels of the first stage (doubled at each of the next two)")
          .add_int("in_channels", 3, "image channels: 3 for RGB, 1 for grayscale")
          .add_int("num_classes", 10, "number of output classes"));
}
