// ssld::max_pool2d and ssld::MaxPool2d: at::max_pool2d's results bit for bit (values, and the
// input each gradient goes to), faster on the CPU. libtorch 1.13 pools a contiguous NCHW float
// tensor one window at a time (2.4-2.5 ms for the demo student's first pool, 128x8x28x28, on two
// AVX-512 cores); its channels-last kernel vectorizes across channels and, with the copies there
// and back, took 0.8-1.2 ms (tests/bench/max_pool_bench.cpp). The forward runs there;
// the backward runs libtorch's NCHW kernel on the indices found, which are plane-local
// (h * width + w) in both layouts and follow the same rule: the first maximum in row-major order
// wins, and a NaN always does. Other dtypes, devices and layouts, and every call while
// libtorch's tracer records a graph (a frozen inference graph gets oneDNN's pooling), go to
// at::max_pool2d unchanged.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/max_pool2d.h>
#include <ATen/ops/max_pool2d_with_indices.h>
#include <ATen/ops/max_pool2d_with_indices_backward.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/jit/frontend/tracer.h>
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <tuple>

namespace ssld {
namespace max_pool_detail {

// A contiguous NCHW float CPU tensor, outside a trace. The arguments are libtorch's to check:
// at::max_pool2d_with_indices refuses bad ones with its own error on either path.
inline bool has_fast_path(const at::Tensor& input) {
  return input.defined() && input.device().is_cpu() && input.scalar_type() == at::kFloat && input.dim() == 4 &&
         input.is_contiguous() && !torch::jit::tracer::isTracing();
}

// Output and indices, both contiguous NCHW, as at::max_pool2d_with_indices returns them.
inline std::tuple<at::Tensor, at::Tensor> pool(const at::Tensor& input, int64_t kernel, int64_t stride,
                                               int64_t padding) {
  auto [output, indices] = at::max_pool2d_with_indices(input.contiguous(at::MemoryFormat::ChannelsLast),
                                                       {kernel, kernel}, {stride, stride}, {padding, padding});
  return {output.contiguous(), indices.contiguous()};
}

class MaxPool2dFunction : public torch::autograd::Function<MaxPool2dFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* context, const at::Tensor& input, int64_t kernel,
                            int64_t stride, int64_t padding) {
    auto [output, indices] = pool(input, kernel, stride, padding);
    context->save_for_backward({input, indices});
    context->saved_data["kernel"] = kernel;
    context->saved_data["stride"] = stride;
    context->saved_data["padding"] = padding;
    return output;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* context,
                                                 torch::autograd::variable_list gradients) {
    const auto saved = context->get_saved_variables();
    const int64_t kernel = context->saved_data["kernel"].toInt(), stride = context->saved_data["stride"].toInt(),
                  padding = context->saved_data["padding"].toInt();
    return {at::max_pool2d_with_indices_backward(gradients[0], saved[0], {kernel, kernel}, {stride, stride},
                                                 {padding, padding}, {1, 1}, false, saved[1]),
            at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace max_pool_detail

// at::max_pool2d(input, kernel, stride, padding) with square windows, floor mode, dilation 1.
inline at::Tensor max_pool2d(const at::Tensor& input, int64_t kernel, int64_t stride, int64_t padding = 0) {
  if (!max_pool_detail::has_fast_path(input))
    return at::max_pool2d(input, {kernel, kernel}, {stride, stride}, {padding, padding});
  return max_pool_detail::MaxPool2dFunction::apply(input, kernel, stride, padding);
}

// torch::nn::MaxPool2d's place in a Sequential (no parameters, so state-dict names are unchanged).
struct MaxPool2dImpl : torch::nn::Cloneable<MaxPool2dImpl> {
  explicit MaxPool2dImpl(int64_t kernel, int64_t stride = -1, int64_t padding = 0)
      : kernel(kernel), stride(stride < 0 ? kernel : stride), padding(padding) {}
  void reset() override {}
  at::Tensor forward(const at::Tensor& input) { return max_pool2d(input, kernel, stride, padding); }
  int64_t kernel, stride, padding;
};
TORCH_MODULE(MaxPool2d);

}  // namespace ssld
