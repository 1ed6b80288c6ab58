"""Execution: plan the runs of one or many configs, skip stored ones, and
dispatch work items to a backend (this process, a local pool, Dask).

`plan` groups runs into work items; `dispatch` runs one item here or one run in
a child process; `runner` holds the backends, the output folder's lock and the
writing of each config's results; `workers` starts the pool's processes;
`resources` estimates what a config needs before it runs. May import: config,
tasks, runs, training, and the results side's writers.
"""
