// ReviewKD, "Distilling Knowledge via Knowledge Review" (Chen et al. 2021): the student's
// features, listed shallow to deep, are fused from the deepest up by attention-based fusion
// (ABF) modules, so each teacher feature is matched by a mix of the student's feature at that
// depth and every deeper one; the hierarchical context loss (HCL) compares each pair at full
// size and pooled to 4x4, 2x2 and 1x1. [N, C] vectors (the pooled pre-logits) count as
// [N, C, 1, 1] maps.
#include "feature_loss.hpp"

namespace ssld::feature {
namespace {

using torch::Tensor;
namespace F = torch::nn::functional;

Shape as_map(const Shape& shape) { return shape.size() == 2 ? Shape{shape[0], shape[1], 1, 1} : shape; }
Tensor as_map(const Tensor& x) { return x.dim() == 2 ? x.view({x.size(0), x.size(1), 1, 1}) : x; }

Tensor nearest(const Tensor& x, int64_t h, int64_t w) {
  if (x.size(2) == h && x.size(3) == w) return x;
  return F::interpolate(x, F::InterpolateFuncOptions().size(std::vector<int64_t>{h, w}).mode(torch::kNearest));
}

// One ABF: a 1x1 conv + BN to the middle width; when a deeper result comes in (all but the
// deepest), two attention maps from both mix it with this one; the mix, brought to the teacher
// feature's size, goes on up, and a 3x3 conv + BN of it is this depth's output.
struct AbfImpl : torch::nn::Module {
  AbfImpl(int64_t in_channels, int64_t mid_channels, int64_t out_channels, bool fuse) {
    reduce = register_module("reduce", torch::nn::Sequential(
        torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, mid_channels, 1).bias(false)),
        torch::nn::BatchNorm2d(mid_channels)));
    output = register_module("output", torch::nn::Sequential(
        torch::nn::Conv2d(torch::nn::Conv2dOptions(mid_channels, out_channels, 3).padding(1).bias(false)),
        torch::nn::BatchNorm2d(out_channels)));
    if (fuse)
      attention = register_module("attention", torch::nn::Sequential(
          torch::nn::Conv2d(torch::nn::Conv2dOptions(mid_channels * 2, 2, 1)), torch::nn::Sigmoid()));
    // The paper's code: kaiming_uniform with a = 1 on both convolutions.
    for (auto* conv : {reduce[0]->as<torch::nn::Conv2d>(), output[0]->as<torch::nn::Conv2d>()})
      torch::nn::init::kaiming_uniform_(conv->weight, 1.0);
  }
  // {this depth's output at the teacher's size, the mix passed on to the shallower ABF}
  std::pair<Tensor, Tensor> forward(const Tensor& x, const Tensor& deeper, int64_t out_h, int64_t out_w) {
    Tensor mix = reduce->forward(x);
    if (!attention.is_empty()) {
      const Tensor y = nearest(deeper, x.size(2), x.size(3));
      const Tensor z = attention->forward(torch::cat({mix, y}, 1));
      mix = mix * z.narrow(1, 0, 1) + y * z.narrow(1, 1, 1);
    }
    mix = nearest(mix, out_h, out_w);
    return {output->forward(mix), mix};
  }
  torch::nn::Sequential reduce{nullptr}, output{nullptr}, attention{nullptr};
};
TORCH_MODULE(Abf);

class ReviewKdLoss : public FeatureLoss {
 public:
  ReviewKdLoss(const ssld::Options& options, const ssld::Context&)
      : FeatureLoss(options, Connector::Never), mid_channels_(options.get_int("mid_channels")),
        warmup_steps_(options.get_int("warmup_steps")) {
    if (mid_channels_ < 0) throw ssld::option_error(options, "mid_channels", "mid_channels must be 0 (automatic) or more");
    if (warmup_steps_ < 0) throw ssld::option_error(options, "warmup_steps", "warmup_steps must be 0 or more");
  }

 protected:
  void build(const std::vector<Shape>& student, const std::vector<Shape>& teacher) override {
    const size_t n = student.size();
    for (size_t i = 0; i < n; ++i)
      if ((student[i].size() != 4 && student[i].size() != 2) || (teacher[i].size() != 4 && teacher[i].size() != 2))
        refuse(i, student[i], teacher[i], "ReviewKD fuses [N, C, H, W] maps or [N, C] vectors");
    // mdistiller's rule: the deepest student width, at most 512.
    const int64_t mid = mid_channels_ > 0 ? mid_channels_ : std::min<int64_t>(512, student[n - 1][1]);
    for (size_t i = 0; i < n; ++i) {
      const bool fuse = i + 1 < n;  // every depth but the deepest mixes in what comes from below
      abfs_.push_back(modules_.register_module("abf" + std::to_string(i),
                                               Abf(student[i][1], mid, teacher[i][1], fuse)));
      out_sizes_.push_back({as_map(teacher[i])[2], as_map(teacher[i])[3]});
    }
    steps_ = host_buffer("steps", torch::zeros({}, torch::kInt64));
  }

  Tensor term(const std::vector<Tensor>& s, const std::vector<Tensor>& t, const ssld::LossInputs&) override {
    const size_t n = s.size();
    std::vector<Tensor> fused(n);
    Tensor mix;
    for (size_t k = n; k-- > 0;) {  // deepest first
      auto [out, passed] = abfs_[k]->forward(as_map(s[k]), mix, out_sizes_[k][0], out_sizes_[k][1]);
      fused[k] = out;
      mix = passed;
    }
    Tensor total;
    for (size_t i = 0; i < n; ++i) {
      const Tensor pair = hierarchical_context_loss(fused[i], as_map(t[i]));
      total = total.defined() ? total + pair : pair;
    }
    double ramp = 1.0;
    if (warmup_steps_ > 0) {
      ramp = std::min(1.0, static_cast<double>(steps_.item<int64_t>()) / static_cast<double>(warmup_steps_));
      if (modules_.is_training()) steps_.add_(1);
    }
    return total * ramp;
  }

 private:
  // MSE at full size plus, for each level l in 4, 2, 1 below the map's height, the MSE of both
  // maps average-pooled to l x l with weights 1/2, 1/4, 1/8; normalized by the weights' sum.
  static Tensor hierarchical_context_loss(const Tensor& s, const Tensor& t) {
    Tensor loss = F::mse_loss(s, t);
    double weight = 1.0, total = 1.0;
    for (int64_t level : {4, 2, 1}) {
      if (level >= s.size(2)) continue;
      weight /= 2.0;
      const auto pool = F::AdaptiveAvgPool2dFuncOptions({level, level});
      loss = loss + F::mse_loss(F::adaptive_avg_pool2d(s, pool), F::adaptive_avg_pool2d(t, pool)) * weight;
      total += weight;
    }
    return loss / total;
  }

  int64_t mid_channels_, warmup_steps_;
  std::vector<Abf> abfs_;
  std::vector<std::array<int64_t, 2>> out_sizes_;
  Tensor steps_;
};

}  // namespace

void add_reviewkd(ssld::Registry& registry) {
  ssld::add_component<ssld::Loss, ReviewKdLoss>(
      registry, "reviewkd",
      "Knowledge review (Chen et al. 2021): attention-based fusion of the student's features, deepest first, and "
      "the hierarchical context loss against the teacher's.",
      feature_schema(1.0, "multiplies the summed HCL losses (mdistiller: 1)", /*connector_option=*/false)
          .add_int("mid_channels", 0, "width inside the fusion modules; 0: the deepest student width, at most 512 (mdistiller)")
          .add_int("warmup_steps", 0,
                   "the loss ramps linearly from 0 over this many training steps (the paper: 20 of 240 epochs; 0: no "
                   "ramp)"));
}

}  // namespace ssld::feature
