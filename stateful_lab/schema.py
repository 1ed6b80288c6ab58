"""The base of every config section: strict types, no unknown keys.

Kept apart from config.py so that task modules can define their own sections
without importing the experiment that assembles them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    # strict: a YAML string "3" is not an int, `true` is not 1; and no .inf or .nan
    # where a number is expected (every run would diverge or mean nothing).
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
