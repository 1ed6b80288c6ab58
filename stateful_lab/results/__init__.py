"""The results side: tables from run records, result files, statistics, verdicts,
the report, `show` and `compare`.

Imports no TensorFlow (a test holds this), so reading results answers at once.
May import: config, runs.records, and the atomic writer; never training or execution.
"""
