"""The experiment config: YAML text in, one typed, validated `Experiment` out.

`files` reads YAML and applies `--set` overrides and words validation errors;
`experiment` is the schema with its derived values and cross-field checks (the
`data:` section is the chosen task's own schema, from `tasks`); `claims` is the
schema of a config's claims. May import: the strict base (`schema`) and `tasks`.
"""
