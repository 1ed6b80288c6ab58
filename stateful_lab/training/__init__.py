"""Training: a run's model, the epoch protocol, and the engines that carry it out.

`models` builds a Keras model per variant and holds the state helpers Keras 3
lacks; `trainers` holds the articles' procedures (fit, train_on_batch, and the
compiled loop); `grouped` trains many runs of one shape as one XLA program;
`engine` is the one interface execution calls, choosing the grouped fast path
where a run allows it. May import: config, tasks, runs; never execution or results.

Importing this package sets up XLA's persistent compilation cache for this
process (`xla_cache`), before anything here compiles.
"""

from stateful_lab.training import xla_cache

xla_cache.setup()
