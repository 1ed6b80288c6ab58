"""Many runs of one shape trained as one: the `loop` trainer vectorized over runs.

Runs that share every graph setting (the seeds of a variant, and sweep points that
differ only in data values) train together in one XLA-compiled program. Each
weight, optimizer slot, state and input is one tensor stacked over runs, with the
run as the last axis, (..., runs): every operation a single run made is one
operation for all runs, vectorized along that axis, so the fixed cost of
launching each small operation is paid once for the whole group instead of once
per run. (Runs last, because the other axes are tiny, a few units or lanes, and
the last axis is the one the CPU's vector instructions run along.)

Runs need not come from one config: what the compiled program depends on is
`program_settings` (the model's shape, loss, optimizer and lanes); what it does
not, each run has its own value of (its epochs, whether it resets its state at
each epoch's start, its optimizer's epsilon, its gates' activation, and how a
forecasting run primes and resets its state). So one program serves the seeds,
variants and sweep points of several configs at once.

Runs never mix: the loss the gradient is taken of is the sum of the runs' own
losses, so each run's weights get exactly their own run's gradient, and the
optimizers are written out element-wise (Keras 3's update rules, per-run gradient
clipping), so each run keeps its own slots. Each run has its own data, initial
weights (those of the Keras model `build_model` makes for its seed) and state.
A group gives the same figures as the runs trained one at a time by the `loop`
trainer, within 1e-5 (tests/test_grouped.py).

`program` holds the group's variables and compiled functions, `cells` the
recurrent steps, `optimizers` the update rules and losses, `sizing` how many
runs a group takes, and `driver` trains a work item through it.
"""
