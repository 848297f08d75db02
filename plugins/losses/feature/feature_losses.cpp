// Feature distillation losses: terms that compare the student's intermediate features with the
// teacher's (names from the models' feature_names(); `ssld features CONFIG` lists them). Each
// pairs `student[i]` with `teacher[i]`, sums the pairs' terms and multiplies by `factor`, whose
// default is the weight RepDistiller (Tian et al. 2020) or mdistiller trains CIFAR-100 with.
// Formulas and papers in README.md. Teacher features are detached; the math is float32.
//   fitnet    hint MSE through a trainable connector (Romero et al. 2015)
//   at        attention transfer (Zagoruyko & Komodakis 2017)
//   sp        similarity preserving (Tung & Mori 2019)
//   pkt       probabilistic knowledge transfer (Passalis & Tefas 2018)
//   rkd       relational KD, distance and angle (Park et al. 2019)
//   nst       neuron selectivity transfer, polynomial-kernel MMD (Huang & Wang 2017)
//   vid       variational information distillation (Ahn et al. 2019), trainable regressor and variance
//   ofd       overhaul of feature distillation (Heo et al. 2019), ofd_loss.cpp
//   crd       contrastive representation distillation (Tian et al. 2020), crd_loss.cpp
//   reviewkd  knowledge review, ABF + HCL (Chen et al. 2021), reviewkd_loss.cpp
#include "feature_loss.hpp"

namespace {

using torch::Tensor;
using ssld::feature::Connector;
using ssld::feature::FeatureLoss;
using ssld::feature::Shape;
using ssld::feature::feature_schema;
using ssld::match_spatial_size;
namespace F = torch::nn::functional;

// ---- FitNet: || C(s) - t ||^2 (mean); C is the base's connector (1x1 conv + BatchNorm for maps,
// Linear for vectors), which FitNet always has.
class FitNetLoss : public FeatureLoss {
 public:
  FitNetLoss(const ssld::Options& options, const ssld::Context&) : FeatureLoss(options, Connector::Always) {}

 protected:
  Tensor pair_loss(size_t, const Tensor& s, const Tensor& t) override { return (s - t).pow(2).mean(); }
};

// ---- Attention transfer: the maps' normalized attention Q = normalize(mean_c |F|^p) compared by
// mean squared difference; channel counts may differ, the larger map is average-pooled.
class AttentionLoss : public FeatureLoss {
 public:
  AttentionLoss(const ssld::Options& options, const ssld::Context&) : FeatureLoss(options, Connector::Optional), p_(options.get_float("p")) {
    if (p_ <= 0) throw ssld::option_error(options, "p", "p must be positive");
  }

 protected:
  void check_pair(size_t i, const Shape& s, const Shape& t) override {
    if (s.size() != 4 || t.size() != 4) refuse(i, s, t, "attention transfer compares [N, C, H, W] maps");
  }
  Tensor pair_loss(size_t, const Tensor& s, const Tensor& t) override {
    Tensor qs = s.abs().pow(p_).mean(1, /*keepdim=*/true), qt = t.abs().pow(p_).mean(1, /*keepdim=*/true);
    if (qs.size(2) * qs.size(3) > qt.size(2) * qt.size(3)) qs = match_spatial_size(qs, qt);
    else qt = match_spatial_size(qt, qs);
    qs = F::normalize(qs.flatten(1), F::NormalizeFuncOptions().dim(1));
    qt = F::normalize(qt.flatten(1), F::NormalizeFuncOptions().dim(1));
    return (qs - qt).pow(2).mean();
  }

 private:
  double p_;
};

// ---- Similarity preserving: G = normalize_rows(f f^T) over the batch; ||G_s - G_t||_F^2 / N^2.
class SimilarityLoss : public FeatureLoss {
 public:
  SimilarityLoss(const ssld::Options& options, const ssld::Context&) : FeatureLoss(options, Connector::Optional) {}

 protected:
  Tensor pair_loss(size_t, const Tensor& s, const Tensor& t) override {
    const int64_t n = s.size(0);
    auto gram = [](const Tensor& f) {
      const Tensor flat = f.reshape({f.size(0), -1});
      return F::normalize(flat.mm(flat.t()), F::NormalizeFuncOptions().dim(1));
    };
    return (gram(s) - gram(t)).pow(2).sum() / static_cast<double>(n * n);
  }
};

// ---- PKT: cosine similarities over the batch as conditional probabilities, KL(teacher || student).
class PktLoss : public FeatureLoss {
 public:
  PktLoss(const ssld::Options& options, const ssld::Context&) : FeatureLoss(options, Connector::Optional), eps_(options.get_float("eps")) {}

 protected:
  Tensor pair_loss(size_t, const Tensor& s, const Tensor& t) override {
    auto probabilities = [&](const Tensor& f) {
      Tensor flat = f.reshape({f.size(0), -1});
      flat = flat / (flat.norm(2, 1, /*keepdim=*/true) + eps_);
      const Tensor similarity = (flat.mm(flat.t()) + 1.0) / 2.0;
      return similarity / similarity.sum(1, /*keepdim=*/true);
    };
    const Tensor ps = probabilities(s), pt = probabilities(t);
    return (pt * ((pt + eps_) / (ps + eps_)).log()).mean();
  }

 private:
  double eps_;
};

// ---- RKD: distances between the batch's embeddings (normalized by their mean) and the angles
// of its triplets, each compared with smooth L1 (Huber, delta 1).
class RkdLoss : public FeatureLoss {
 public:
  RkdLoss(const ssld::Options& options, const ssld::Context&)
      : FeatureLoss(options, Connector::Optional), distance_weight_(options.get_float("distance_weight")),
        angle_weight_(options.get_float("angle_weight")) {}

 protected:
  Tensor pair_loss(size_t, const Tensor& s, const Tensor& t) override {
    const Tensor es = s.reshape({s.size(0), -1}), et = t.reshape({t.size(0), -1});
    Tensor loss = torch::zeros({}, s.options());
    if (s.size(0) < 2) return loss + 0 * es.sum();  // one sample has no relations (a last, partial batch)
    if (distance_weight_ > 0) {
      auto distances = [](const Tensor& e) {
        const Tensor d = pairwise_distances(e);
        const Tensor positive = d > 0;
        return d / d.masked_select(positive).mean();
      };
      loss = loss + distance_weight_ * F::smooth_l1_loss(distances(es), distances(et));
    }
    if (angle_weight_ > 0) {
      auto angles = [](const Tensor& e) {
        const Tensor difference = e.unsqueeze(0) - e.unsqueeze(1);  // [N, N, D]: e_j - e_i at [i, j]
        const Tensor unit = F::normalize(difference, F::NormalizeFuncOptions().p(2).dim(2));
        return torch::bmm(unit, unit.transpose(1, 2)).reshape({-1});
      };
      loss = loss + angle_weight_ * F::smooth_l1_loss(angles(es), angles(et));
    }
    return loss;
  }

 private:
  // Euclidean distances, with the diagonal exactly 0 and a gradient-safe square root.
  static Tensor pairwise_distances(const Tensor& e) {
    const Tensor square = e.pow(2).sum(1);
    Tensor d = (square.unsqueeze(1) + square.unsqueeze(0) - 2 * e.mm(e.t())).clamp_min(1e-12).sqrt();
    const int64_t n = e.size(0);
    return d * (1 - torch::eye(n, e.options()));
  }
  double distance_weight_, angle_weight_;
};

// ---- NST: each channel's spatial map (L2-normalized) is a sample; the squared MMD between the
// student's and the teacher's channel samples with the polynomial kernel (x . y)^2.
class NstLoss : public FeatureLoss {
 public:
  NstLoss(const ssld::Options& options, const ssld::Context&) : FeatureLoss(options, Connector::Optional) {}

 protected:
  void check_pair(size_t i, const Shape& s, const Shape& t) override {
    if (s.size() != 4 || t.size() != 4) refuse(i, s, t, "NST compares [N, C, H, W] maps");
  }
  Tensor pair_loss(size_t, const Tensor& s, const Tensor& t) override {
    Tensor fs = s, ft = t;
    if (fs.size(2) * fs.size(3) > ft.size(2) * ft.size(3)) fs = match_spatial_size(fs, ft);
    else ft = match_spatial_size(ft, fs);
    fs = F::normalize(fs.flatten(2), F::NormalizeFuncOptions().dim(2));
    ft = F::normalize(ft.flatten(2), F::NormalizeFuncOptions().dim(2));
    auto kernel_mean = [](const Tensor& a, const Tensor& b) { return torch::bmm(a, b.transpose(1, 2)).pow(2).mean(); };
    return kernel_mean(ft, ft) + kernel_mean(fs, fs) - 2 * kernel_mean(fs, ft);
  }
};

// ---- VID: the teacher's map as a Gaussian around a regressor of the student's, with a learned
// per-channel variance softplus(alpha) + eps: mean of 1/2 [log var + (t - mu)^2 / var].
class VidLoss : public FeatureLoss {
 public:
  VidLoss(const ssld::Options& options, const ssld::Context&)
      : FeatureLoss(options, Connector::Never), initial_variance_(options.get_float("initial_variance")), eps_(options.get_float("eps")) {
    if (initial_variance_ <= eps_)
      throw ssld::option_error(options, "initial_variance", "initial_variance must exceed eps");
  }

 protected:
  void check_pair(size_t i, const Shape& s, const Shape& t) override {
    if (s.size() != 4 || t.size() != 4) refuse(i, s, t, "VID regresses [N, C, H, W] maps");
    // Three 1x1 convolutions with ReLUs between them; the hidden width is the teacher's.
    const int64_t mid = t[1];
    torch::nn::Sequential regressor(torch::nn::Conv2d(torch::nn::Conv2dOptions(s[1], mid, 1).bias(false)),
                                    torch::nn::ReLU(),
                                    torch::nn::Conv2d(torch::nn::Conv2dOptions(mid, mid, 1).bias(false)),
                                    torch::nn::ReLU(),
                                    torch::nn::Conv2d(torch::nn::Conv2dOptions(mid, t[1], 1).bias(false)));
    regressors_.push_back(modules_.register_module("regressor" + std::to_string(i), regressor));
    // softplus(alpha) + eps = initial_variance at the start.
    const double alpha = std::log(std::exp(initial_variance_ - eps_) - 1.0);
    alphas_.push_back(modules_.register_parameter("alpha" + std::to_string(i), torch::full({t[1]}, alpha)));
  }
  Tensor pair_loss(size_t i, const Tensor& s, const Tensor& t) override {
    const Tensor mean = match_spatial_size(regressors_[i]->forward(s), t);
    const Tensor variance = (F::softplus(alphas_[i]) + eps_).view({1, -1, 1, 1});
    return (0.5 * (variance.log() + (mean - t).pow(2) / variance)).mean();
  }

 private:
  double initial_variance_, eps_;
  std::vector<torch::nn::Sequential> regressors_;
  std::vector<Tensor> alphas_;
};

}  // namespace

SSLD_PLUGIN("feature_losses", "0.2.0", registry) {
  ssld::add_component<ssld::Loss, FitNetLoss>(
      registry, "fitnet", "FitNet hints (Romero et al. 2015): MSE between a connector of the student's feature and the teacher's.",
      feature_schema(100.0, "multiplies the summed hint losses (RepDistiller: 100)", /*connector_option=*/false));
  ssld::add_component<ssld::Loss, AttentionLoss>(
      registry, "at", "Attention transfer (Zagoruyko & Komodakis 2017): normalized spatial attention maps compared.",
      feature_schema(1000.0, "multiplies the summed terms (the paper's beta, 1000)")
          .add_float("p", 2.0, "attention = mean over channels of |F|^p"));
  ssld::add_component<ssld::Loss, SimilarityLoss>(
      registry, "sp", "Similarity preserving KD (Tung & Mori 2019): batch similarity matrices compared.",
      feature_schema(3000.0, "multiplies the summed terms (the paper's gamma, 3000)"));
  ssld::add_component<ssld::Loss, PktLoss>(
      registry, "pkt", "Probabilistic knowledge transfer (Passalis & Tefas 2018): KL between cosine-similarity distributions.",
      feature_schema(30000.0, "multiplies the summed terms (RepDistiller: 30000)")
          .add_float("eps", 1e-7, "added to norms and probabilities"));
  ssld::add_component<ssld::Loss, RkdLoss>(
      registry, "rkd", "Relational KD (Park et al. 2019): distance- and angle-wise relations of the batch's embeddings.",
      feature_schema(1.0, "multiplies the summed terms (RepDistiller: 1)")
          .add_float("distance_weight", 25.0, "weight of the distance term (the paper: 25)")
          .add_float("angle_weight", 50.0, "weight of the angle term (the paper: 50)"));
  ssld::add_component<ssld::Loss, NstLoss>(
      registry, "nst", "Neuron selectivity transfer (Huang & Wang 2017): MMD of channel maps, polynomial kernel.",
      feature_schema(50.0, "multiplies the summed terms (RepDistiller: 50)"));
  ssld::add_component<ssld::Loss, VidLoss>(
      registry, "vid", "Variational information distillation (Ahn et al. 2019): Gaussian likelihood of the teacher's map.",
      feature_schema(1.0, "multiplies the summed terms (RepDistiller: 1)", /*connector_option=*/false)
          .add_float("initial_variance", 5.0, "each channel's variance at the start (the paper: 5)")
          .add_float("eps", 1e-5, "smallest variance"));
  ssld::feature::add_ofd(registry);
  ssld::feature::add_crd(registry);
  ssld::feature::add_reviewkd(registry);
}
