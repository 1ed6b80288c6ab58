"""Reading a config: YAML text, `--set` overrides, and validation errors worded
as one line per dotted key. The schema itself is in config.py.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from stateful_lab.errors import LabError
from stateful_lab.userfiles import UserFileError, echo, read_bytes, shorten

MAX_CONFIG_BYTES = 2**20
"""The largest config file the lab reads; a config is a few kilobytes."""
MAX_DEPTH = 16
"""The deepest nesting a config may have; the schema needs four levels."""
MAX_PROBLEMS = 40
MAX_LINE = 400
"""An error lists at most this many problems, each at most this long, whatever it echoes."""


class ConfigError(LabError, ValueError):
    """A config that cannot run; `problems` has one line per problem, each cut to
    a readable length (a message never grows with the value it quotes)."""

    def __init__(self, problems: list[str]):
        shown = problems if len(problems) <= MAX_PROBLEMS + 1 else problems[:MAX_PROBLEMS]
        lines = [shorten(" ".join(problem.split("\n")), MAX_LINE) for problem in shown]
        if len(shown) < len(problems):
            lines.append(f"... and {len(problems) - MAX_PROBLEMS} more problems")
        self.problems = lines
        super().__init__("\n".join(lines))


class DuplicateKey(yaml.YAMLError):
    """A mapping that has the same key twice; YAML would silently keep the last."""


class _Loader(yaml.SafeLoader):
    """YAML 1.1's safe loader, but reading 1e-3 and 1e6 as floats (YAML 1.2 does;
    PyYAML alone reads them as strings, which the strict schema would reject), and
    refusing a key written twice in one mapping (PyYAML keeps the last silently,
    and the settings of the first vanish)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                line = key_node.start_mark.line + 1
                if key_node.value in seen:
                    raise DuplicateKey(
                        f"key {key_node.value!r} at line {line} repeats the one at line "
                        f"{seen[key_node.value]}; keep one of them"
                    )
                seen[key_node.value] = line
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    """YAML text's value; nesting deeper than MAX_DEPTH is a ValueError (Python's
    own recursion limit would otherwise end the parse in a RecursionError)."""
    try:
        value = yaml.load(text, Loader=_Loader)
    except RecursionError:
        raise ValueError(f"nested too deeply to read (a config needs at most {MAX_DEPTH} levels)") from None
    if _depth(value) > MAX_DEPTH:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep; a config needs four")
    return value


def _depth(value: Any) -> int:
    """How deeply lists and mappings nest in `value`, counted up to MAX_DEPTH + 1
    without recursion (aliases may share one list many times: each is seen once)."""
    deepest, stack, seen = 0, [(value, 1)], set()
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, (list, dict)) or id(node) in seen:
            continue
        seen.add(id(node))
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            return depth
        stack += [(child, depth + 1) for child in (node.values() if isinstance(node, dict) else node)]
    return deepest


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = read_bytes(path, MAX_CONFIG_BYTES, "the config file")
    except UserFileError as error:
        raise ConfigError([str(error)]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            [f"{path}: not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}); save the file as UTF-8"]
        ) from None
    try:
        raw = parse_yaml(text)
    except (DuplicateKey, ValueError) as error:
        raise ConfigError([f"{path}: {error}"]) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError([f"{path}:{where}: YAML syntax error: {problem}"]) from None
    if raw is None:
        raise ConfigError([f"{path}: the config file is empty; start from a file in configs/"])
    if not isinstance(raw, dict):
        raise ConfigError(
            [f"{path}: the top level must be a mapping of keys (name:, data:, ...), not a {type(raw).__name__}"]
        )
    return raw


def apply_overrides(raw: dict[str, Any], overrides) -> None:
    """Apply `--set a.b=value` overrides in place; values are parsed as YAML."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError([f"--set {echo(item)}: expected KEY=VALUE, e.g. --set train.epochs=3"])
        try:
            value = parse_yaml(text)
        except (DuplicateKey, ValueError) as error:
            raise ConfigError([f"--set {echo(item)}: {error}"]) from None
        except yaml.YAMLError:
            raise ConfigError([f"--set {echo(item)}: the value is not valid YAML"]) from None
        try:
            set_dotted(raw, key, value)
        except ValueError as error:
            raise ConfigError([f"--set {echo(item)}: {error}"]) from None


def set_dotted(raw: dict[str, Any], key: str, value: Any) -> None:
    """raw[a][b] = value for key "a.b", creating sections on the way."""
    *parents, leaf = key.split(".")
    node = raw
    for depth, part in enumerate(parents):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"{'.'.join(parents[: depth + 1])} is a value, not a section")
    node[leaf] = value


# --- error messages ----------------------------------------------------------


class TaggedUnion(dict):
    """A section that is one of several model classes, chosen by a tag field
    (the `data:` section: one class per task, chosen by `task`): {tag: class}."""

    def __init__(self, discriminator: str, members: dict[str, type[BaseModel]]):
        super().__init__(members)
        self.discriminator = discriminator


Section = type[BaseModel] | TaggedUnion | None


def format_validation_errors(error: ValidationError, root: type[BaseModel]) -> list[str]:
    """One line per offending key: the dotted key, the bad value, what is allowed."""
    by_key: dict[str, list[tuple[dict, Section]]] = {}
    for item in error.errors():
        key, parent = _locate(item, root)
        by_key.setdefault(key, []).append((item, parent))
    lines = []
    for key, items in by_key.items():
        if any(other.startswith(key + "[") for other in by_key):
            continue  # a union branch failed deeper down; that line says more
        first, parent = items[0]
        if first["type"] == "extra_forbidden":
            lines.append(_unknown_key_message(key, parent, root))
        elif first["type"] == "union_tag_invalid":
            context = first["ctx"]
            lines.append(
                f"{key}.{context['discriminator'].strip(chr(39))}: got {echo(context['tag'])}; "
                f"must be one of {context['expected_tags']}"
            )
        else:
            allowed = " or ".join(dict.fromkeys(_allowed(item) for item, _ in items))
            lines.append(f"{shorten(key)}: got {echo(first.get('input'))}; {allowed}")
    return lines


def _locate(item: dict, root: type[BaseModel]) -> tuple[str, Section]:
    """The dotted key of a pydantic error location, and the section holding its
    last part. Union labels (a task's tag, pydantic's 'list[int]') are dropped:
    they are pydantic's, not the user's."""
    parts: list[str] = []
    section: Section = root
    parent: Section = root
    for position, part in enumerate(item["loc"]):
        if isinstance(part, int):
            parts[-1] += f"[{part}]"
            section = _element_model(parent, parts[-1].split("[")[0]) if isinstance(parent, type) else None
        elif isinstance(section, TaggedUnion):  # the part is the tag
            section = section.get(part)
        elif section and (
            part in section.model_fields or (item["type"] == "extra_forbidden" and position == len(item["loc"]) - 1)
        ):
            parts.append(part)
            parent, section = section, section_of(section, part)
    return ".".join(parts), parent


def _element_model(model: type[BaseModel], key: str) -> type[BaseModel] | None:
    """The model of a list field's elements (claims: a list of Claim), if it is one."""
    field = model.model_fields.get(key)
    members = getattr(field.annotation, "__args__", ()) if field else ()
    return (
        members[0] if len(members) == 1 and isinstance(members[0], type) and issubclass(members[0], BaseModel) else None
    )


def section_of(model: type[BaseModel], key: str) -> Section:
    """The sub-section a field holds: a model class, a tagged union, or None."""
    field = model.model_fields.get(key)
    if field is None:
        return None
    annotation = field.annotation
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    members = [
        member
        for member in getattr(annotation, "__args__", ())
        if isinstance(member, type) and issubclass(member, BaseModel)
    ]
    if members and field.discriminator:
        return TaggedUnion(
            field.discriminator, {member.model_fields[field.discriminator].default: member for member in members}
        )
    return None


def _allowed(item: dict) -> str:
    message = item["msg"]
    for prefix in ("Input should be", "Input should"):
        if message.startswith(prefix):
            return "must be" + message[len(prefix) :]
    return message[0].lower() + message[1:]


def _unknown_key_message(key: str, parent: Section, root: type[BaseModel]) -> str:
    *parents, leaf = key.split(".")
    allowed = list(parent.model_fields) if isinstance(parent, type) else []
    union = _union_at(root, parents)
    if union and any(leaf in member.model_fields for member in union.values()):
        tag = parent.model_fields[union.discriminator].default
        return f"{key}: not used by {union.discriminator} {tag}; remove it"
    guess = difflib.get_close_matches(leaf, allowed, n=1)
    hint = f"did you mean {'.'.join([*parents, guess[0]])}? " if guess else ""
    section = ".".join(parents) or "the top level"
    return f"{shorten(key)}: unknown key; {hint}allowed under {section}: {', '.join(allowed)}"


def _union_at(root: type[BaseModel], parents: list[str]) -> TaggedUnion | None:
    """The tagged union the dotted section `parents` holds, if it is one."""
    section: Section = root
    for part in parents:
        section = section_of(section, part) if isinstance(section, type) else None
    return section if isinstance(section, TaggedUnion) else None
