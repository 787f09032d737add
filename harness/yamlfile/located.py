"""YAML text → a tree of located values (`Y`): every value keeps its line and field path.

The YAML is composed into nodes, not loaded into plain data, so a message can name the
line of any value. The composer refuses what a hand-written file never needs and a
hostile one uses: duplicate keys, keys that are not strings, recursive aliases, alias
bombs (more than `MAX_VALUES` values once aliases are expanded), nesting deeper than
`MAX_DEPTH`, collections with tags of their own; a scalar that its tag cannot read
(``!!int abc``) is refused with its line. Every refusal is a `Problem`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from harness.yamlfile.values import describe

MAX_DEPTH = 40
MAX_VALUES = 20_000  # nodes after alias expansion: a "billion laughs" file stops here


class Problem(ValueError):
    """One thing wrong in a file: the field (a dotted path, "" for the file), the message,
    the line (None: unknown) and, for YAML syntax errors, the column. Each loader turns it
    into its own error with its own wording of the place."""

    def __init__(
        self, path: str, message: str, line: int | None = None, column: int | None = None
    ) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.line = line or None  # 0: a value that never had a line (built from data)
        self.column = column


@dataclass
class Y:
    """A YAML value with where it came from: `value` is a scalar, `list[Y]` or
    `dict[str, Y]`; `key_line` is the line of the key naming it (unknown keys are
    reported there). Line 0: built from data (`Y.of`), no line known."""

    value: Any
    line: int
    path: str
    key_line: int

    @classmethod
    def of(cls, data: Any, path: str = "") -> Y:
        """Plain data (from JSON, from `to_dict()`) as a tree without lines."""
        if isinstance(data, dict):
            for k in data:
                if not isinstance(k, str):
                    raise Problem(path, f"keys must be strings, got {describe(k)}")
            return cls({k: cls.of(v, join(path, k)) for k, v in data.items()}, 0, path, 0)
        if isinstance(data, list | tuple):
            return cls([cls.of(v, f"{path}[{i}]") for i, v in enumerate(data)], 0, path, 0)
        return cls(data, 0, path, 0)

    def plain(self) -> Any:
        """The value as plain data (dicts, lists, scalars)."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value

    def walk(self) -> Iterator[Y]:
        yield self
        children = self.value.values() if isinstance(self.value, dict) else self.value
        if isinstance(self.value, dict | list):
            for child in children:
                yield from child.walk()

    def line_of(self, path: str) -> int | None:
        """The line of the field at `path`, or of its nearest ancestor in this tree."""
        lines = {y.path: y.key_line for y in self.walk()}
        while True:
            if lines.get(path):
                return lines[path]
            if not path:
                return None
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""


def read_document(path: Path) -> str:
    """A file's text; a `Problem` at the file (no field) when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise Problem("", "file not found") from None
    except UnicodeDecodeError as e:
        raise Problem("", f"not UTF-8 text ({e.reason})") from None
    except OSError as e:
        raise Problem("", f"cannot read file: {e.strerror}") from None


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


_COLLECTION_TAGS = ("tag:yaml.org,2002:seq", "tag:yaml.org,2002:map")


def _tag(node: Node) -> str:
    return str(node.tag).replace("tag:yaml.org,2002:", "!!")


def compose(text: str) -> Y | None:
    """The document as a `Y` tree (None when empty); `Problem` on bad YAML."""
    return _Composer(text).compose()


class _Composer:
    def __init__(self, text: str) -> None:
        self.text = text
        self.values = 0
        self.open: set[int] = set()

    def compose(self) -> Y | None:
        loader: yaml.SafeLoader | None = None
        try:
            loader = yaml.SafeLoader(self.text)  # its reader refuses control characters
            node = loader.get_single_node()
            return None if node is None else self._build(loader, node, "", 0, None)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            problem = e.problem or e.context or "invalid YAML"
            line = mark.line + 1 if mark else None
            column = mark.column + 1 if mark else None
            raise Problem("", f"invalid YAML: {problem}", line, column) from None
        except yaml.YAMLError as e:
            first = (str(e).splitlines() or ["invalid YAML"])[0]
            raise Problem("", f"invalid YAML: {first}") from None
        except RecursionError:
            raise Problem("", f"nested too deeply (at most {MAX_DEPTH} levels)") from None
        finally:
            if loader is not None:
                loader.dispose()

    def _err(self, node: Node, path: str, message: str) -> Problem:
        return Problem(path, message, node.start_mark.line + 1)

    def _build(
        self, loader: yaml.SafeLoader, node: Node, path: str, depth: int, key_line: int | None
    ) -> Y:
        line = node.start_mark.line + 1
        self.values += 1
        if self.values > MAX_VALUES:
            raise self._err(node, path, f"more than {MAX_VALUES} values (aliases expanding?)")
        if depth > MAX_DEPTH:
            raise self._err(node, path, f"nested too deeply (at most {MAX_DEPTH} levels)")
        if isinstance(node, ScalarNode):
            return Y(self._scalar(loader, node, path), line, path, key_line or line)
        if node.tag not in _COLLECTION_TAGS:
            raise self._err(node, path, f"unsupported YAML tag {_tag(node)}")
        if id(node) in self.open:
            raise self._err(node, path, "recursive alias: the value contains itself")
        self.open.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                items = [
                    self._build(loader, child, f"{path}[{i}]", depth + 1, None)
                    for i, child in enumerate(node.value)
                ]
                return Y(items, line, path, key_line or line)
            if isinstance(node, MappingNode):
                return Y(self._mapping(loader, node, path, depth), line, path, key_line or line)
            raise self._err(node, path, f"unsupported YAML node {type(node).__name__}")
        finally:
            self.open.discard(id(node))

    def _scalar(self, loader: yaml.SafeLoader, node: ScalarNode, path: str) -> Any:
        try:
            return loader.construct_object(node, deep=True)
        except yaml.YAMLError:
            raise
        except Exception as e:  # noqa: BLE001 - `!!int abc`, `!!bool maybe`, `!!timestamp 2020-13-45`
            raise self._err(
                node, path, f"cannot read {describe(node.value)} as {_tag(node)}: {e}"
            ) from None

    def _key(self, loader: yaml.SafeLoader, node: Node, path: str) -> str:
        if not isinstance(node, ScalarNode):
            kind = "a list" if isinstance(node, SequenceNode) else "a mapping"
            raise self._err(node, path, f"keys must be strings, got {kind}")
        key = self._scalar(loader, node, path)
        if not isinstance(key, str):
            raise self._err(node, path, f"keys must be strings, got {describe(key)}")
        return key

    def _mapping(
        self, loader: yaml.SafeLoader, node: MappingNode, path: str, depth: int
    ) -> dict[str, Y]:
        first: dict[str, int] = {}
        for knode, _ in node.value:
            if knode.tag == "tag:yaml.org,2002:merge":
                continue
            key = self._key(loader, knode, path)
            if key in first:
                raise self._err(
                    knode, join(path, key), f"duplicate key (first at line {first[key]})"
                )
            first[key] = knode.start_mark.line + 1
        loader.flatten_mapping(node)  # `<<: *anchor` merges; explicit keys win
        out: dict[str, Y] = {}
        for knode, vnode in node.value:
            key = self._key(loader, knode, path)
            kline = knode.start_mark.line + 1
            out[key] = self._build(loader, vnode, join(path, key), depth + 1, kline)
        return out
