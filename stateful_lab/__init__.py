"""stateful-lab: reproduce and test the popular claims about stateful Keras LSTMs."""

import os

__version__ = "0.1.0"

# Pinned before TensorFlow is imported anywhere: oneDNN's fused kernels change
# the floating-point bits, and Keras must run on the TensorFlow backend.
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# XLA's CPU backend at LLVM optimization level 2 instead of 3, unless XLA_FLAGS
# already sets a level: it compiles and runs the lab's programs faster (commit
# 886aa52 has the measurements), and moves figures only in their last bits. Set
# here, before anything parses XLA's flags.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_backend_optimization_level=2".strip()
