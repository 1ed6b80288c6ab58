"""stateful-lab: reproduce and test the popular claims about stateful Keras LSTMs."""

import os

__version__ = "0.1.0"

# Pinned before TensorFlow is imported anywhere: oneDNN's fused kernels change
# the floating-point bits, and Keras must run on the TensorFlow backend.
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# XLA's CPU backend at LLVM optimization level 2 instead of 3, unless XLA_FLAGS
# already sets a level: measured here, level 2 compiled the lab's programs 7-19%
# faster and ran them 10-28% faster (stacked_clipnorm's 6-run group, lag_copy's
# 90), and the untimed configs of `make reproduce` took 194 s against 219. The
# figures change only in their last bits (a different rounding, as any change of
# compiled code gives); level 1 gave the same figures as level 2, level 0 ran
# many times slower. Set here, before anything parses XLA's flags.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=2".strip()
