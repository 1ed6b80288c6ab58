"""stateful-lab: reproduce and test the popular claims about stateful Keras LSTMs,
and answer "should my recurrent model be stateful?" on your own data.

From Python (the library the command line calls; see the README, "From Python"):

    import stateful_lab
    results = stateful_lab.run("configs/first_timestep.yaml", seeds=3)
    results.summary, results.verdicts
    stateful_lab.load("results/first_timestep")
    stateful_lab.compare("results/first_timestep", ["variant=stateful"], ["variant=stateless"])
    answer = stateful_lab.ask("sales.csv", target="units")   # should my model be stateful?
    answer.recommendation, answer.models, answer.comparisons
"""

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


_API = {"run", "load", "compare", "Results"}
_ANSWER = {"ask", "Answer", "QuestionError"}
_ERRORS = {"LabError": "errors", "RunFailed": "errors", "ConfigError": "config.files", "ResultsError": "results.tables"}


def __getattr__(name: str):
    """The API's names, imported on first use: `import stateful_lab` stays as
    light as the command line needs it (no pandas, no TensorFlow)."""
    import importlib

    if name in _API:
        return getattr(importlib.import_module("stateful_lab.api"), name)
    if name in _ANSWER:
        return getattr(importlib.import_module("stateful_lab.answer"), name)
    if name in _ERRORS:
        return getattr(importlib.import_module(f"stateful_lab.{_ERRORS[name]}"), name)
    raise AttributeError(f"module 'stateful_lab' has no attribute {name!r}")


__all__ = [
    "Answer",
    "Results",
    "ask",
    "compare",
    "load",
    "run",
    "QuestionError",
    "LabError",
    "RunFailed",
    "ConfigError",
    "ResultsError",
]
