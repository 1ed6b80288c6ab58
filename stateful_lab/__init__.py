"""stateful-lab: reproduce and test the popular claims about stateful Keras LSTMs."""

import os

__version__ = "0.1.0"

# Pinned before TensorFlow is imported anywhere: oneDNN's fused kernels change
# the floating-point bits, and Keras must run on the TensorFlow backend.
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
