// ssld::max_pool2d: bit-identical to at::max_pool2d (values, gradients) for every geometry it
// takes, on inputs with ties, NaNs and infinities; libtorch's own kernel for what it does not
// take, and under the tracer, so a traced graph pools its input rather than a constant.
#include <ssld/inference_graph.hpp>
#include <ssld/max_pool.hpp>

#include <ATen/ops/max_pool2d_with_indices.h>
#include <ATen/ops/randint.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/randn_like.h>
#include <ATen/ops/rand.h>

#include <gtest/gtest.h>

#include <limits>

namespace {

struct Geometry {
  int64_t kernel, stride, padding, height, width;
};

// Integers in [-3, 3] (many ties, which decide where a gradient goes), then some NaNs, infinities
// and an all -inf plane.
at::Tensor awkward_input(int64_t batch, int64_t channels, int64_t height, int64_t width) {
  at::Tensor x = at::randint(-3, 4, {batch, channels, height, width}).to(at::kFloat);
  const at::Tensor where = at::rand(x.sizes());
  x.masked_fill_(where < 0.02, std::numeric_limits<float>::quiet_NaN());
  x.masked_fill_(where > 0.98, -std::numeric_limits<float>::infinity());
  x.masked_fill_((where > 0.96) & (where <= 0.98), std::numeric_limits<float>::infinity());
  x[0][0].fill_(-std::numeric_limits<float>::infinity());
  return x;
}

// Equal bit patterns: NaN payloads included.
void expect_same_bits(const at::Tensor& actual, const at::Tensor& expected, const std::string& what) {
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  EXPECT_TRUE(at::equal(actual.contiguous().view(at::kInt), expected.contiguous().view(at::kInt))) << what;
}

TEST(MaxPool, ValuesIndicesAndGradientsAreLibtorchsBitForBit) {
  at::manual_seed(0);
  const Geometry geometries[] = {
      {2, 2, 0, 28, 28}, {2, 2, 0, 7, 9},   {2, 2, 1, 6, 5},  {3, 2, 1, 112, 112}, {3, 2, 1, 9, 10}, {3, 2, 1, 2, 2},
      {3, 1, 1, 14, 14}, {3, 1, 0, 5, 3},   {2, 1, 0, 6, 7},  {4, 3, 2, 13, 11},   {5, 2, 2, 9, 9},  {1, 1, 0, 4, 4},
      {3, 3, 0, 3, 3},   {3, 2, 0, 17, 17},
  };
  for (const Geometry& g : geometries) {
    const std::string what = "kernel " + std::to_string(g.kernel) + " stride " + std::to_string(g.stride) +
                             " padding " + std::to_string(g.padding) + " on " + std::to_string(g.height) + "x" +
                             std::to_string(g.width);
    const at::Tensor input = awkward_input(3, 5, g.height, g.width);
    const auto [expected, expected_indices] =
        at::max_pool2d_with_indices(input, {g.kernel, g.kernel}, {g.stride, g.stride}, {g.padding, g.padding});
    const auto [output, indices] = ssld::max_pool_detail::pool(input, g.kernel, g.stride, g.padding);
    expect_same_bits(output, expected, what);
    EXPECT_TRUE(at::equal(indices, expected_indices)) << what;

    // Finite inputs for the gradient (a NaN gradient compares unequal to itself).
    const at::Tensor finite = at::randint(-3, 4, input.sizes()).to(at::kFloat);
    const at::Tensor ours = finite.clone().requires_grad_(), theirs = finite.clone().requires_grad_();
    const at::Tensor pooled = ssld::max_pool2d(ours, g.kernel, g.stride, g.padding);
    const at::Tensor reference = at::max_pool2d(theirs, {g.kernel, g.kernel}, {g.stride, g.stride}, {g.padding, g.padding});
    expect_same_bits(pooled, reference, what);
    const at::Tensor upstream = at::randn_like(reference);
    pooled.backward(upstream);
    reference.backward(upstream);
    expect_same_bits(ours.grad(), theirs.grad(), what + " (gradient)");
  }
}

TEST(MaxPool, TakesTheDemoStudentsShapesAndTheResNetStem) {
  at::manual_seed(1);
  for (const auto& [input, kernel, stride, padding] :
       {std::tuple{at::randn({128, 8, 28, 28}).relu_(), 2, 2, 0}, std::tuple{at::randn({2, 64, 112, 112}), 3, 2, 1}}) {
    ASSERT_TRUE(ssld::max_pool_detail::has_fast_path(input));
    expect_same_bits(ssld::max_pool2d(input, kernel, stride, padding),
                     at::max_pool2d(input, {kernel, kernel}, {stride, stride}, {padding, padding}), "fast path");
  }
}

TEST(MaxPool, WhatTheKernelDoesNotTakeGoesToLibtorch) {
  const at::Tensor input = at::randn({2, 3, 8, 8});
  const at::Tensor cases[] = {input.to(at::kDouble), input.contiguous(at::MemoryFormat::ChannelsLast),
                              input.transpose(2, 3), input.to(at::kBFloat16)};
  for (const at::Tensor& x : cases) {
    EXPECT_FALSE(ssld::max_pool_detail::has_fast_path(x)) << x.toString();
    EXPECT_TRUE(at::equal(ssld::max_pool2d(x, 2, 2, 0), at::max_pool2d(x, {2, 2}, {2, 2}))) << x.toString();
  }
  // Arguments libtorch refuses are refused by libtorch, on the fast path too (padding over half
  // the kernel, a window larger than the padded image).
  ASSERT_TRUE(ssld::max_pool_detail::has_fast_path(input));
  EXPECT_THROW(ssld::max_pool2d(input, 2, 2, 2), c10::Error);
  EXPECT_THROW(ssld::max_pool2d(input, 11, 1, 1), c10::Error);
}

// While the tracer records, the pool is at::max_pool2d itself, which a frozen graph turns into
// oneDNN's pooling; the graph then pools any input.
TEST(MaxPool, ATracedGraphRecordsLibtorchsPoolAndPoolsItsInput) {
  ssld::MaxPool2d pool(2);
  at::Tensor traced_output;
  int traced_calls = 0, fast_calls_while_tracing = 0;
  torch::jit::Module graph = ssld::trace_for_inference(
      [&](const at::Tensor& x) {
        ++traced_calls;
        fast_calls_while_tracing += ssld::max_pool_detail::has_fast_path(x);
        return pool->forward(x);
      },
      at::randn({4, 3, 8, 8}), traced_output);
  EXPECT_EQ(traced_calls, 1);
  EXPECT_EQ(fast_calls_while_tracing, 0);
  const at::Tensor other = at::randn({4, 3, 8, 8});
  const at::Tensor pooled = graph.forward({other}).toTensor();
  EXPECT_TRUE(at::equal(pooled, at::max_pool2d(other, {2, 2}, {2, 2})));
}

}  // namespace
