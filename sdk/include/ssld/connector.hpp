// The automatic connector a feature loss can ask for when a student feature and a teacher
// feature differ in channels or spatial size (as FitNet's regressor and OFD's connector do):
// a 1x1 convolution + BatchNorm from the student's channels to the teacher's for [N, C, H, W]
// maps, a Linear for [N, C] vectors, then the map brought to the teacher's spatial size.
// Header-only, compiled into the loss plugin; needs <torch/torch.h> (torch::nn).
#pragma once

#include <ssld/features.hpp>

#include <torch/torch.h>

#include <string>
#include <vector>

namespace ssld {

// Why a student feature of shape `s` cannot be connected to a teacher feature of shape `t`, or
// "" when it can (both maps or both vectors, the same batch).
inline std::string connector_mismatch(const std::vector<int64_t>& s, const std::vector<int64_t>& t) {
  if (s.size() != t.size() || (s.size() != 4 && s.size() != 2))
    return "a connector joins two [N, C, H, W] maps or two [N, C] vectors";
  if (s[0] != t[0]) return "the batch sizes differ";
  return "";
}

// The trainable part: 1x1 conv (no bias) + BatchNorm2d for maps, Linear for vectors. With
// `only_when_channels_differ`, an empty Sequential (identity) when the channels already agree.
// Call connector_mismatch first.
inline torch::nn::Sequential make_connector(const std::vector<int64_t>& s, const std::vector<int64_t>& t,
                                            bool only_when_channels_differ = false) {
  torch::nn::Sequential connector;
  if (only_when_channels_differ && s[1] == t[1]) return connector;
  if (s.size() == 4) {
    connector->push_back(torch::nn::Conv2d(torch::nn::Conv2dOptions(s[1], t[1], 1).bias(false)));
    connector->push_back(torch::nn::BatchNorm2d(t[1]));
  } else {
    connector->push_back(torch::nn::Linear(s[1], t[1]));
  }
  return connector;
}

// A [N, C, h, w] map brought to `like`'s spatial size: bilinear interpolation (align_corners =
// false) when it is smaller in both sizes, adaptive average pooling otherwise.
inline at::Tensor match_spatial_size(const at::Tensor& x, const at::Tensor& like) {
  namespace F = torch::nn::functional;
  if (x.size(2) == like.size(2) && x.size(3) == like.size(3)) return x;
  if (x.size(2) <= like.size(2) && x.size(3) <= like.size(3))
    return F::interpolate(x, F::InterpolateFuncOptions()
                                 .size(std::vector<int64_t>{like.size(2), like.size(3)})
                                 .mode(torch::kBilinear)
                                 .align_corners(false));
  return F::adaptive_avg_pool2d(x, F::AdaptiveAvgPool2dFuncOptions({like.size(2), like.size(3)}));
}

// The connector applied: the student feature with the teacher feature's shape.
inline at::Tensor connect(torch::nn::Sequential& connector, const at::Tensor& student, const at::Tensor& teacher) {
  at::Tensor out = connector->is_empty() ? student : connector->forward(student);
  return out.dim() == 4 ? match_spatial_size(out, teacher) : out;
}

}  // namespace ssld
