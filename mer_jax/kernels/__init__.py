"""Hand-picked kernels that XLA:CPU runs slowly: the CRNN's convolutions through oneDNN.

``conv.conv_bias_relu`` (relu(conv + bias), the CRNN's layers) and ``conv.conv_general_dilated``
(a drop-in for ``lax.conv_general_dilated``, flax.linen.Conv's ``conv_general_dilated`` argument):
on CPU, stride-1 unpadded f32 NHWC/HWIO convolutions and their gradients run as XLA FFI custom
calls into oneDNN (``onednn_conv.cc``, compiled on first use by ``build``); everything else, and
every GPU/TPU platform, runs ``lax.conv_general_dilated``.
"""
