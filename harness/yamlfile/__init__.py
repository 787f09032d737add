"""One validation layer for kmschaos's YAML files (topology and rehearsal files).

- `located`: YAML text → a `Y` tree whose every value keeps its line and field path;
  hostile or sloppy YAML (duplicate keys, alias bombs, deep nesting, odd tags) is a
  `Problem` with its line; `read_document` reads a file or says why not.
- `shapes`: the declarations of what a file may contain (known keys, number ranges,
  names, choices, durations) with their help; the loaders check values with them and
  `schema_of` renders them as JSON Schema for editors (`kmschaos schema`).
- `reader`: the field checks on located values (`Reader`).
- `values`: durations, `describe`/`kind_of`, and each format's `Wording`.

Each loader turns a `Problem` into its own error: `TopologyError` (``file: field:
message``, the line as an attribute) or `RehearsalError` (``file: line N: field:
message``).
"""

from __future__ import annotations

import json

from harness.yamlfile.located import (
    MAX_DEPTH,
    MAX_VALUES,
    Problem,
    Y,
    compose,
    join,
    read_document,
)
from harness.yamlfile.reader import Reader
from harness.yamlfile.shapes import (
    AnyOf,
    Boolean,
    Choice,
    Duration,
    Field,
    Integer,
    Invalid,
    Keys,
    Lazy,
    ListOf,
    MapOf,
    Millis,
    Name,
    Number,
    Offset,
    Schema,
    Shape,
    Share,
    Text,
    schema_of,
)
from harness.yamlfile.values import (
    MAX_DURATION_S,
    NAME_KINDS,
    SHOW_VALUES,
    Wording,
    describe,
    format_duration,
    kind_of,
    parse_duration,
    unknown,
)


def schema_text(schema: Schema) -> str:
    """A schema document as the shipped files hold it."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


__all__ = [
    "MAX_DEPTH",
    "MAX_DURATION_S",
    "MAX_VALUES",
    "NAME_KINDS",
    "SHOW_VALUES",
    "AnyOf",
    "Boolean",
    "Choice",
    "Duration",
    "Field",
    "Integer",
    "Invalid",
    "Keys",
    "Lazy",
    "ListOf",
    "MapOf",
    "Millis",
    "Name",
    "Number",
    "Problem",
    "Reader",
    "Schema",
    "Shape",
    "Offset",
    "Share",
    "Text",
    "Wording",
    "Y",
    "compose",
    "describe",
    "format_duration",
    "join",
    "kind_of",
    "parse_duration",
    "read_document",
    "schema_of",
    "schema_text",
    "unknown",
]
