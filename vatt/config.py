"""YAML configs: loading, one level of ``extends``, ``key.sub=value`` overrides, validation, resolved copies.

A config is plain data. Component nodes are mappings with a ``type`` key naming a registered component; the
key a node sits under says its kind (``tokenizer:`` → tokenizers, ``losses:`` → a list of losses, ...).
Validation walks the whole tree and reports every problem at once, each with its config path, before
anything is built.

YAML aliases let a file of a few hundred bytes stand for gigabytes ("billion laughs"); a config is names and
numbers, so the reader refuses, while composing, text whose aliases would expand it past MAX_VALUES values or
MAX_CHARACTERS characters, before anything walks, copies or prints the expanded tree.
"""
from __future__ import annotations

import copy
import difflib
import os
import re
from pathlib import Path
from typing import Any

import yaml

from vatt.errors import ConfigError, RegistryError, UserError
from vatt.files import atomic_write, utf8_lines
from vatt.messages import cut, shown
from vatt.ranges import range_problems
from vatt.registry import SINGULAR, Entry, check_kwargs, registry

# Far beyond any real config (the paper's have a few hundred values in a few KB), far below what hurts.
MAX_TEXT = 1 << 20            # characters of a config file or an override value
MAX_VALUES = 100_000          # scalars, lists and mappings, once the aliases are expanded
MAX_CHARACTERS = 10_000_000   # characters of all scalars, once the aliases are expanded
MAX_DEPTH = 64                # lists and mappings inside each other


class _Refused(yaml.YAMLError):
    """YAML text whose expansion is refused (see the module docstring)."""


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-4`` as a string; configs are full of such learning rates, so read them as floats.

    Composing also keeps the size of every node with its aliases expanded ((values, characters), counted once
    per node: an alias reuses its anchor's count), so an alias bomb is refused before it is ever expanded.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self._expanded: dict[int, tuple[int, int]] = {}
        self._depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        line = f"line {event.start_mark.line + 1}"
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(f"lists and mappings nest more than {MAX_DEPTH} deep ({line})")
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if isinstance(event, yaml.AliasEvent):
            if id(node) not in self._expanded:  # its anchor is still being composed: the alias is inside it
                raise _Refused(f"the alias *{event.anchor} is inside its own anchor ({line})")
            return node
        values, characters = 1, len(node.value) if isinstance(node, yaml.ScalarNode) else 0
        for child in _children(node):
            child_values, child_characters = self._expanded[id(child)]
            values, characters = values + child_values, characters + child_characters
        if values > MAX_VALUES or characters > MAX_CHARACTERS:
            raise _Refused(f"the node at {line} expands through its aliases to more than {MAX_VALUES:,} values or "
                           f"{MAX_CHARACTERS:,} characters; a config is names and numbers")
        self._expanded[id(node)] = (values, characters)
        return node


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def parse_yaml(text: str, source: str = "YAML text"):
    """The data of YAML ``text``; UserError naming ``source`` if it is not valid YAML or too large."""
    if len(text) > MAX_TEXT:
        raise UserError(f"{source}: {len(text):,} characters; a config is names and numbers, refused above "
                        f"{MAX_TEXT:,}")
    try:
        return yaml.load(text, Loader=_Loader)
    except _Refused as exc:
        raise UserError(f"{source}: refused: {exc}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{source}: not valid YAML: {exc}") from None


# The key a component node sits under → its registry kind.
NODE_KINDS = {
    "tokenizer": "tokenizers", "backbone": "backbones", "shared_backbone": "backbones", "head": "heads",
    "losses": "losses", "evaluators": "evaluators", "optimizer": "optimizers", "schedule": "schedules",
    "train": "datasets", "eval": "datasets", "datasets": "datasets",
}
LIST_KEYS = {"losses", "evaluators", "datasets"}  # keys that hold a list of nodes; any other holds one node


def load(path: str | os.PathLike, overrides: list[str] = ()) -> dict:
    """Read a config file, merge it over the file it ``extends`` (one level), then apply overrides."""
    path = Path(path)
    cfg = _read_yaml(path)
    parent_name = cfg.pop("extends", None)
    if parent_name is not None:
        parent_path = (path.parent / parent_name).resolve()
        parent = _read_yaml(parent_path)
        if "extends" in parent:
            raise UserError(f"{path}: extends {parent_name}, which itself extends {parent['extends']}; "
                            f"only one level of extends is allowed")
        cfg = merge(parent, cfg)
    for text in overrides:
        apply_override(cfg, text)
    return cfg


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    size = path.stat().st_size
    if size > MAX_TEXT:  # before reading it: the file could be any size
        raise UserError(f"{path}: {size:,} bytes; a config is names and numbers, refused above {MAX_TEXT:,}")
    try:
        text = "".join(utf8_lines(path))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    data = parse_yaml(text, str(path))
    if not isinstance(data, dict):
        raise UserError(f"{path}: a config must be a mapping at the top level, got {type(data).__name__}")
    return data


def merge(base: dict, update: dict) -> dict:
    """``update`` over ``base``: mappings merge key by key, anything else (lists included) is replaced."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_override(cfg: dict, text: str) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML; list items by index, ``losses.0.weight=2``)."""
    if "=" not in text:
        raise UserError(f"override {shown(text)} is not of the form key.sub=value")
    dotted, raw = text.split("=", 1)
    keys = [k for k in dotted.strip().split(".")]
    if not all(keys):
        raise UserError(f"override {shown(text)}: empty key in {shown(dotted)}")
    value = parse_yaml(raw, f"override {shown(text)}: the value") if raw.strip() else None
    node: Any = cfg
    for depth, key in enumerate(keys[:-1]):
        here = ".".join(keys[: depth + 1])
        if isinstance(node, list):
            node = node[_list_index(node, key, here, text)]
            continue
        if node.get(key) is None:
            node[key] = {}
        if not isinstance(node[key], (dict, list)):
            raise UserError(f"override {shown(text)}: {here} is {shown(node[key])}, not a mapping")
        node = node[key]
    last = keys[-1]
    if isinstance(node, list):
        node[_list_index(node, last, dotted, text)] = value
    else:
        node[last] = value


def _list_index(items: list, key: str, where: str, text: str) -> int:
    if not key.isdigit() or int(key) >= len(items):
        raise UserError(f"override {shown(text)}: {where} needs a list index below {len(items)}, got {shown(key)}")
    return int(key)


def dump(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None)


def save_resolved(cfg: dict, path: str | os.PathLike) -> None:
    """Write the resolved config (extends merged, overrides applied) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = dump(cfg)
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


# validation -----------------------------------------------------------------------------------------
def check_section(schema: type, value: Any, where: str) -> list[str]:
    """Check a plain settings mapping against a dataclass's fields (unknown, missing, simple types, ranges)."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        return [f"{where}: must be a mapping of settings ({where}.key=value), got {shown(value)}"]
    return check_kwargs(Entry("settings", where, schema), value, where) + range_problems(schema, value, where)


def component_nodes(cfg: Any, where: str = "") -> list[tuple[str, str, dict]]:
    """Every (config path, kind, node) in the tree, found by the key each node sits under."""
    found = []
    if isinstance(cfg, dict):
        for key, value in cfg.items():
            path = f"{where}.{key}" if where else str(key)
            kind = NODE_KINDS.get(key)
            if kind and key in LIST_KEYS and isinstance(value, list):
                for i, item in enumerate(value):
                    found.append((f"{path}.{i}", kind, item))
                    found += component_nodes(item, f"{path}.{i}")
            elif kind and value is not None:
                found.append((path, kind, value))
                found += component_nodes(value, path)
            else:
                found += component_nodes(value, path)
    return found


def check_components(cfg: dict, *, reserved: dict[str, set] | None = None,
                     injected: dict[str, set] | None = None) -> list[str]:
    """Resolve every component node's name and check its keys against the component's signature."""
    reserved, injected = reserved or {}, injected or {}
    problems: list[str] = []
    for path, kind, node in component_nodes(cfg):
        if not isinstance(node, dict) or "type" not in node:
            problems.append(f"{path}: must be a mapping naming its {SINGULAR[kind]} with a 'type' key, "
                            f"got {shown(node)}")
            continue
        try:
            entry = registry(kind).get(str(node["type"]), where=f"{path}.type")
        except RegistryError as exc:
            problems.append(str(exc))
            continue
        own = reserved.get(kind, set()) | {"type"}
        kwargs = {k: v for k, v in node.items() if k not in own and not _is_nested_node(k, v)}
        problems += check_kwargs(entry, kwargs, path, injected.get(kind, set()))
    return problems


def _is_nested_node(key: str, value: Any) -> bool:
    # a mixture dataset's children are nodes of their own, checked on their own
    return key in NODE_KINDS and isinstance(value, (list, dict))


def check_top_level(cfg: dict, sections: set[str]) -> list[str]:
    problems = []
    for key in cfg:
        if key not in sections:
            close = difflib.get_close_matches(str(key), sorted(sections), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(f"{cut(str(key))}: unknown top-level section{hint} (valid: {', '.join(sorted(sections))})")
    return problems


def raise_if(problems: list[str], source: str | None = None) -> None:
    if problems:
        raise ConfigError(problems, source)
