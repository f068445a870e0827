"""Hand-picked kernels that XLA:CPU runs slowly: the CRNN's convolutions through oneDNN.

``conv.conv_bias_relu`` (relu(conv + bias), the CRNN's layers): on CPU, its stride-1 unpadded f32
NHWC/HWIO convolution and gradients run as XLA FFI custom calls into oneDNN (``onednn_conv.cc``,
compiled on first use by ``build``); on GPU/TPU, and wherever the kernels cannot be built, the
same expression runs in lax (``conv.status()`` says which and why).
"""
