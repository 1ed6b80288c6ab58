"""What one run is and what it yields, below everything that trains or schedules it.

A run is one (sweep point, variant, seed) of an experiment: `unit.Unit` holds its
resolved settings and its key, `seeding` its one seeding block, `records` the
`EpochResult`s and `RunResult` it produces and their on-disk form. Training,
execution and the results side all speak of runs in these terms.

May import: config, tasks, the atomic writer. Nothing here imports TensorFlow
but `seeding`.
"""
