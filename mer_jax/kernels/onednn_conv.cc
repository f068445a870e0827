// XLA FFI custom calls into oneDNN: the CRNN's 2-D convolutions (stride 1, no padding) on CPU.
//
// Layouts are XLA's: activations NHWC, kernels HWIO (flax.linen.Conv's). oneDNN chooses its own
// (blocked) kernel layout; the small kernel tensors are reordered on every call, the large
// activations never are. The handlers, one per pass of relu(conv(x, w) + b):
//   mer_conv_bias_relu_forward     x (N,H,W,C), w (KH,KW,C,O), b (O)
//                                                           -> y  (N,H-KH+1,W-KW+1,O), fused
//   mer_conv_backward_data         dy (N,OH,OW,O), w        -> dx (N,OH+KH-1,OW+KW-1,C)
//   mer_conv_backward_weights_bias x (N,H,W,C), dy          -> dw (KH,KW,C,O), db (O) in one pass
// Built by mer_jax.kernels.build; loaded by mer_jax.kernels.conv.
#include <cstdint>
#include <string>
#include <unordered_map>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

namespace {

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

struct Shapes {
  memory::dims src, weights, dst;  // logical NCHW / OIHW, as oneDNN wants them
};

Shapes shapes(int64_t n, int64_t h, int64_t w, int64_t c, int64_t kh, int64_t kw, int64_t o) {
  return {{n, c, h, w}, {o, c, kh, kw}, {n, o, h - kh + 1, w - kw + 1}};
}

const memory::dims kStrides = {1, 1};
const memory::dims kNoPadding = {0, 0};

// The forward pass with the bias and the ReLU fused (the hint of the backward passes too).
dnnl::convolution_forward::primitive_desc forward_desc(const Shapes& s) {
  dnnl::primitive_attr attr;
  dnnl::post_ops ops;
  ops.append_eltwise(dnnl::algorithm::eltwise_relu, 0.f, 0.f);
  attr.set_post_ops(ops);
  memory::desc src(s.src, dt::f32, tag::nhwc), dst(s.dst, dt::f32, tag::nhwc);
  memory::desc weights(s.weights, dt::f32, tag::any);
  return dnnl::convolution_forward::primitive_desc(
      cpu_engine(), dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, src,
      weights, memory::desc({s.dst[1]}, dt::f32, tag::x), dst, kStrides, kNoPadding, kNoPadding,
      attr);
}

// The user's HWIO kernel in the layout a primitive wants (reordered when they differ).
memory kernel_for(const memory::desc& wanted, const Shapes& s, void* data, dnnl::stream& stream) {
  memory user(memory::desc(s.weights, dt::f32, tag::hwio), cpu_engine(), data);
  if (wanted == user.get_desc()) return user;
  memory converted(wanted, cpu_engine());
  dnnl::reorder(user, converted).execute(stream, user, converted);
  return converted;
}

template <typename F>
ffi::Error guarded(F&& body) {
  try {
    body();
    return ffi::Error::Success();
  } catch (const dnnl::error& err) {
    return ffi::Error(ffi::ErrorCode::kInternal, std::string("oneDNN: ") + err.what());
  }
}

// y = relu(conv(x, w) + b)
ffi::Error ConvBiasReluForward(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w,
                               ffi::Buffer<ffi::F32> b, ffi::ResultBuffer<ffi::F32> y) {
  auto xd = x.dimensions();
  auto wd = w.dimensions();
  if (xd.size() != 4 || wd.size() != 4 || wd[2] != xd[3])
    return ffi::Error::InvalidArgument("mer_conv_bias_relu_forward: x (N,H,W,C), w (KH,KW,C,O)");
  if (b.dimensions().size() != 1 || b.dimensions()[0] != wd[3])
    return ffi::Error::InvalidArgument("mer_conv_bias_relu_forward: b (O) for w (KH,KW,C,O)");
  return guarded([&] {
    Shapes s = shapes(xd[0], xd[1], xd[2], xd[3], wd[0], wd[1], wd[3]);
    auto pd = forward_desc(s);
    dnnl::stream stream(cpu_engine());
    memory kernel = kernel_for(pd.weights_desc(), s, w.untyped_data(), stream);
    memory src(pd.src_desc(), cpu_engine(), x.untyped_data());
    memory dst(pd.dst_desc(), cpu_engine(), y->untyped_data());
    memory bias(pd.bias_desc(), cpu_engine(), b.untyped_data());
    dnnl::convolution_forward(pd).execute(
        stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, kernel}, {DNNL_ARG_BIAS, bias},
                 {DNNL_ARG_DST, dst}});
    stream.wait();
  });
}

ffi::Error ConvBackwardData(ffi::Buffer<ffi::F32> dy, ffi::Buffer<ffi::F32> w,
                            ffi::ResultBuffer<ffi::F32> dx) {
  auto od = dy.dimensions();
  auto wd = w.dimensions();
  if (od.size() != 4 || wd.size() != 4 || wd[3] != od[3])
    return ffi::Error::InvalidArgument("mer_conv_backward_data: dy (N,OH,OW,O), w (KH,KW,C,O)");
  return guarded([&] {
    Shapes s = shapes(od[0], od[1] + wd[0] - 1, od[2] + wd[1] - 1, wd[2], wd[0], wd[1], wd[3]);
    auto hint = forward_desc(s);
    dnnl::convolution_backward_data::primitive_desc pd(
        cpu_engine(), dnnl::algorithm::convolution_direct,
        memory::desc(s.src, dt::f32, tag::nhwc), memory::desc(s.weights, dt::f32, tag::any),
        memory::desc(s.dst, dt::f32, tag::nhwc), kStrides, kNoPadding, kNoPadding, hint);
    dnnl::stream stream(cpu_engine());
    memory kernel = kernel_for(pd.weights_desc(), s, w.untyped_data(), stream);
    memory diff_dst(pd.diff_dst_desc(), cpu_engine(), dy.untyped_data());
    memory diff_src(pd.diff_src_desc(), cpu_engine(), dx->untyped_data());
    dnnl::convolution_backward_data(pd).execute(
        stream,
        {{DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_WEIGHTS, kernel}, {DNNL_ARG_DIFF_SRC, diff_src}});
    stream.wait();
  });
}

// dw and db (the sum of dy over N, OH, OW) from x and dy, in one oneDNN pass.
ffi::Error ConvBackwardWeightsBias(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> dy,
                                   ffi::ResultBuffer<ffi::F32> dw,
                                   ffi::ResultBuffer<ffi::F32> db) {
  auto xd = x.dimensions();
  auto od = dy.dimensions();
  if (xd.size() != 4 || od.size() != 4 || xd[0] != od[0])
    return ffi::Error::InvalidArgument(
        "mer_conv_backward_weights_bias: x (N,H,W,C), dy (N,OH,OW,O)");
  if (db->dimensions().size() != 1 || db->dimensions()[0] != od[3])
    return ffi::Error::InvalidArgument("mer_conv_backward_weights_bias: db (O) for dy (N,OH,OW,O)");
  return guarded([&] {
    int64_t kh = xd[1] - od[1] + 1, kw = xd[2] - od[2] + 1;
    Shapes s = shapes(xd[0], xd[1], xd[2], xd[3], kh, kw, od[3]);
    auto hint = forward_desc(s);
    memory::desc src_md(s.src, dt::f32, tag::nhwc), dst_md(s.dst, dt::f32, tag::nhwc);
    memory::desc weights_md(s.weights, dt::f32, tag::any), bias_md({od[3]}, dt::f32, tag::x);
    dnnl::convolution_backward_weights::primitive_desc pd(
        cpu_engine(), dnnl::algorithm::convolution_direct, src_md, weights_md, bias_md, dst_md,
        kStrides, kNoPadding, kNoPadding, hint);
    dnnl::stream stream(cpu_engine());
    memory user(memory::desc(s.weights, dt::f32, tag::hwio), cpu_engine(), dw->untyped_data());
    bool direct = pd.diff_weights_desc() == user.get_desc();
    memory diff_weights = direct ? user : memory(pd.diff_weights_desc(), cpu_engine());
    std::unordered_map<int, memory> args = {
        {DNNL_ARG_SRC, memory(pd.src_desc(), cpu_engine(), x.untyped_data())},
        {DNNL_ARG_DIFF_DST, memory(pd.diff_dst_desc(), cpu_engine(), dy.untyped_data())},
        {DNNL_ARG_DIFF_WEIGHTS, diff_weights},
        {DNNL_ARG_DIFF_BIAS, memory(pd.diff_bias_desc(), cpu_engine(), db->untyped_data())}};
    dnnl::convolution_backward_weights(pd).execute(stream, args);
    if (!direct) dnnl::reorder(diff_weights, user).execute(stream, diff_weights, user);
    stream.wait();
  });
}

}  // namespace

using F32Buffer = ffi::Buffer<ffi::F32>;
XLA_FFI_DEFINE_HANDLER_SYMBOL(
    MerConvBiasReluForward, ConvBiasReluForward,
    ffi::Ffi::Bind().Arg<F32Buffer>().Arg<F32Buffer>().Arg<F32Buffer>().Ret<F32Buffer>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(MerConvBackwardData, ConvBackwardData,
                              ffi::Ffi::Bind().Arg<F32Buffer>().Arg<F32Buffer>().Ret<F32Buffer>());
XLA_FFI_DEFINE_HANDLER_SYMBOL(
    MerConvBackwardWeightsBias, ConvBackwardWeightsBias,
    ffi::Ffi::Bind().Arg<F32Buffer>().Arg<F32Buffer>().Ret<F32Buffer>().Ret<F32Buffer>());
