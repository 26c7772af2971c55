"""Typed readers over the YAML node tree. Every reader takes `(node, path)` and returns a plain
Python value or raises `ConfigError` naming the key path and the 1-based line of the node.

The file is composed (`yaml.compose`), never loaded: nodes keep their line numbers, so each
error points at the exact line, and duplicate keys (which `yaml.safe_load` silently collapses)
are caught. Section handlers build their parsers from these readers.
"""

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from chargeback.errors import ConfigError
from chargeback.validation import SLUG_RE

Reader = Callable[[Node, str], Any]


ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_TEXT_BYTES = 1024 * 1024


def line_of(node: Node) -> int:
    return node.start_mark.line + 1


def fail(node: Node | None, path: str, message: str):
    raise ConfigError(message, path=path, line=line_of(node) if node is not None else None)


def compose(text: str) -> Node:
    """The document's root node; a syntax error becomes one ConfigError line with its line."""
    if len(text.encode()) > MAX_TEXT_BYTES:
        raise ConfigError(f"the file is larger than {MAX_TEXT_BYTES} bytes")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem and exc.problem.startswith("but "):
            problem = f"{exc.context} {exc.problem}"  # "expected a single document ... but found"
        raise ConfigError(
            f"YAML syntax error: {problem}", line=mark.line + 1 if mark else None
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"YAML syntax error: {exc}") from None
    if root is None:
        raise ConfigError("the file is empty")
    return root


def _scalar_value(node: ScalarNode, path: str):
    try:
        return SafeConstructor().construct_object(node, deep=True)
    except ConstructorError as exc:
        fail(node, path, f"cannot read this value ({exc.problem})")
    except ValueError as exc:  # e.g. an impossible timestamp
        fail(node, path, f"cannot read this value ({exc})")
    return None  # unreachable


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    tag = node.tag.rsplit(":", 1)[-1]
    return {"str": "a string", "int": "an integer", "float": "a number", "bool": "a boolean"}.get(
        tag, f"a {tag}" if tag != "null" else "empty (null)"
    )


def _scalar(node: Node, path: str, tag: str, expected: str):
    if not isinstance(node, ScalarNode) or node.tag != f"tag:yaml.org,2002:{tag}":
        fail(node, path, f"expected {expected}, got {_kind(node)}")
    return _scalar_value(node, path)


def string(*, pattern: re.Pattern | None = None, hint: str = "", max_length: int = 200) -> Reader:
    def read(node: Node, path: str) -> str:
        value = _scalar(node, path, "str", "a string")
        if not value.strip():
            fail(node, path, "must not be empty")
        if len(value) > max_length:
            fail(node, path, f"longer than {max_length} characters")
        if pattern is not None and not pattern.match(value):
            fail(node, path, f"{value!r} is not valid: {hint or 'wrong format'}")
        return value

    return read


def slug(node: Node, path: str) -> str:
    return string(pattern=SLUG_RE, hint="use letters, digits, '-' and '_'", max_length=100)(
        node, path
    )


def version(node: Node, path: str) -> str:
    # The seed writes `version: '1'`; an unquoted 1 means the same thing.
    if isinstance(node, ScalarNode) and node.tag.endswith((":str", ":int")):
        value = str(_scalar_value(node, path))
        if value == "1":
            return value
        fail(node, path, f"unsupported version {value!r} (this server reads version '1')")
    fail(node, path, f"expected '1', got {_kind(node)}")
    return ""  # unreachable


def boolean(node: Node, path: str) -> bool:
    return _scalar(node, path, "bool", "true or false")


def integer(*, minimum: int | None = None, maximum: int | None = None) -> Reader:
    def read(node: Node, path: str) -> int:
        value = _scalar(node, path, "int", "an integer")
        if minimum is not None and value < minimum:
            fail(node, path, f"must be at least {minimum}")
        if maximum is not None and value > maximum:
            fail(node, path, f"must be at most {maximum}")
        return value

    return read


def number(*, minimum: float = 0, maximum: float | None = None) -> Reader:
    def read(node: Node, path: str) -> float:
        if not isinstance(node, ScalarNode) or node.tag.rsplit(":", 1)[-1] not in {"int", "float"}:
            fail(node, path, f"expected a number, got {_kind(node)}")
        value = float(_scalar_value(node, path))
        if value != value or value <= minimum:  # NaN or not positive
            fail(node, path, f"must be greater than {minimum:g}")
        if maximum is not None and value > maximum:
            fail(node, path, f"must be at most {maximum:g}")
        return value

    return read


def choice(*choices: str) -> Reader:
    def read(node: Node, path: str) -> str:
        value = _scalar(node, path, "str", "a string")
        if value not in choices:
            fail(node, path, f"unknown value {value!r} (expected one of: {', '.join(choices)})")
        return value

    return read


def url(node: Node, path: str) -> str:
    value = string(max_length=500)(node, path)
    if not re.match(r"^https?://[^\s/]+", value):
        fail(node, path, f"{value!r} is not an http(s) URL")
    return value.rstrip("/")


def list_of(item: Reader, *, unique: bool = False) -> Reader:
    def read(node: Node, path: str) -> list:
        if not isinstance(node, SequenceNode):
            fail(node, path, f"expected a list, got {_kind(node)}")
        values = []
        for index, child in enumerate(node.value):
            value = item(child, f"{path}[{index}]")
            if unique and value in values:
                fail(child, f"{path}[{index}]", f"{value!r} is listed twice")
            values.append(value)
        return values

    return read


@dataclass(frozen=True)
class Field:
    reader: Reader
    required: bool = False
    default: Any = None


@dataclass
class Located:
    """A mapping's values plus where each key sits, for errors found after parsing."""

    values: dict
    node: Node
    path: str
    key_nodes: dict

    def __getitem__(self, key):
        return self.values[key]

    def get(self, key, default=None):
        return self.values.get(key, default)

    def where(self, key: str) -> tuple[str, int]:
        node = self.key_nodes.get(key, self.node)
        return f"{self.path}.{key}" if self.path else key, line_of(node)


def at_most_one(located: Located, keys, message) -> None:
    """ConfigError at the second of `keys` given in the mapping (in the file's order), with
    `message(first, second)`: for keys that say the same thing two ways."""
    given = sorted(
        (key for key in keys if located[key] is not None), key=lambda key: located.where(key)[1]
    )
    if len(given) > 1:
        path, line = located.where(given[1])
        raise ConfigError(message(given[0], given[1]), path=path, line=line)


def mapping(
    fields: dict[str, Field],
    *,
    check: Callable[[Located], None] | None = None,
    more: Callable[[], dict[str, Field]] | None = None,
) -> Reader:
    """A mapping with known keys: unknown, duplicate or missing keys are errors. `more()` adds
    keys known only when the file is read (registered by upper apps)."""
    base = fields

    def read(node: Node, path: str) -> Located:
        fields = {**base, **more()} if more is not None else base
        if not isinstance(node, MappingNode):
            fail(node, path, f"expected a mapping, got {_kind(node)}")
        values, key_nodes = {}, {}
        for key_node, value_node in node.value:
            key = _scalar_value(key_node, path) if isinstance(key_node, ScalarNode) else None
            key_path = f"{path}.{key}" if path else str(key)
            if not isinstance(key, str):
                fail(key_node, path, "keys must be plain names")
            if key in key_nodes:
                fail(key_node, key_path, "duplicate key")
            if key not in fields:
                allowed = ", ".join(fields)
                fail(key_node, key_path, f"unknown key (allowed here: {allowed})")
            key_nodes[key] = key_node
            values[key] = fields[key].reader(value_node, key_path)
        for key, field in fields.items():
            if key in values:
                continue
            if field.required:
                fail(node, f"{path}.{key}" if path else key, "required key is missing")
            values[key] = copy.copy(field.default)  # never share a mutable default
        located = Located(values=values, node=node, path=path, key_nodes=key_nodes)
        if check is not None:
            check(located)
        return located

    return read


def env_ref() -> Reader:
    """`{env: NAME}`: the name of an environment variable, never its value. Whether the
    organization may name it, and whether it is set, is checked when applying
    (chargeback/env_refs.py), so that parsing tells nothing about the server's environment."""
    read_map = mapping(
        {"env": Field(string(pattern=ENV_NAME_RE, hint="an environment variable name"), True)}
    )

    def read(node: Node, path: str) -> str:
        return read_map(node, path)["env"]

    return read
