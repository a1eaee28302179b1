"""Names → components, one registry per kind.

Built-in components register themselves with the ``@register(kind, name)`` decorator when their module is
imported (``vatt/components.py`` lists those modules; they are imported on first use). Plugins are installed
packages that declare entry points in the group ``vatt.<kind>``: the entry point's name is the component's
name and its value ``module:object`` the component. A plugin is imported only when one of its names is looked
up or ``--list`` asks for everything, and a plugin that fails to import breaks nothing but its own names.

A config node names a component by registered name only (``{"type": "vit_base", ...}``), so nothing in a
YAML file can import or run arbitrary code.
"""
from __future__ import annotations

import difflib
import importlib
import importlib.metadata as metadata
import inspect
import threading
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from vatt import installed
from vatt.errors import ConfigError, RegistryError
from vatt.messages import cut, reason, shown

# each kind of component → how a message names one of them
SINGULAR = {"tokenizers": "tokenizer", "backbones": "backbone", "heads": "head", "losses": "loss",
            "evaluators": "evaluator", "datasets": "dataset", "optimizers": "optimizer", "schedules": "schedule",
            "tasks": "task"}
KINDS = tuple(SINGULAR)
BUILTINS_MODULE = "vatt.components"


@dataclass
class Entry:
    kind: str
    name: str
    obj: Callable[..., Any]
    provider: str = "vatt"          # distribution that ships it
    version: str = ""
    example: dict = field(default_factory=dict)

    @property
    def source(self) -> str:
        return f"{getattr(self.obj, '__module__', '?')}:{getattr(self.obj, '__qualname__', repr(self.obj))}"


@dataclass
class PluginFailure:
    kind: str
    name: str
    provider: str
    error: BaseException


class Registry:
    """The components of one kind: decorator-registered built-ins plus lazily loaded entry points."""

    def __init__(self, kind: str):
        self.kind = kind
        self.group = f"vatt.{kind}"
        self._entries: dict[str, Entry] = {}
        self._failures: dict[str, PluginFailure] = {}

    def add(self, entry: Entry) -> None:
        taken = self._entries.get(entry.name)
        if taken is not None and taken.obj is not entry.obj:
            raise RegistryError(
                f"{SINGULAR[self.kind]} name {entry.name!r} is registered twice: by {taken.source} "
                f"(package {taken.provider}) and by {entry.source} (package {entry.provider})")
        if taken is not None and not entry.example:
            entry.example = taken.example
        self._entries[entry.name] = entry

    # entry points -----------------------------------------------------------------------------------
    def _entry_points(self) -> dict[str, list[metadata.EntryPoint]]:
        found: dict[str, list[metadata.EntryPoint]] = {}
        for ep in installed.entry_points(self.group):
            found.setdefault(ep.name, [])
            if all(_dist_name(other) != _dist_name(ep) for other in found[ep.name]):
                found[ep.name].append(ep)
        return found

    def _load_entry_point(self, name: str, candidates: list[metadata.EntryPoint]) -> None:
        if len(candidates) > 1:
            claims = ", ".join(f"{_dist_name(ep)} ({ep.value})" for ep in candidates)
            raise RegistryError(f"{SINGULAR[self.kind]} name {name!r} is claimed by several plugins: {claims}; "
                                f"uninstall one of them")
        ep = candidates[0]
        try:
            obj = ep.load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a broken plugin (even one that calls sys.exit) breaks only its own names
            self._failures[name] = PluginFailure(self.kind, name, _dist_name(ep), exc)
            return
        dist = ep.dist
        example = getattr(obj, "vatt_example", None) or {}
        self.add(Entry(self.kind, name, obj, provider=_dist_name(ep),
                       version=dist.version if dist else "", example=dict(example)))

    # lookup -----------------------------------------------------------------------------------------
    def get(self, name: str, where: str | None = None) -> Entry:
        ensure_builtins()
        candidates = self._entry_points().get(name)
        if name in self._entries:
            clash = self._builtin_clash(name, candidates or [])
            if clash:
                raise RegistryError(f"{clash}{f' (at {where})' if where else ''}; rename the plugin's entry "
                                    f"point or uninstall the plugin")
            return self._entries[name]
        if candidates:
            self._load_entry_point(name, candidates)
            if name in self._entries:
                return self._entries[name]
        raise self._unknown(name, where)

    def _unknown(self, name: str, where: str | None) -> RegistryError:
        failure = self._failures.get(name)
        at = f" (at {where})" if where else ""
        if failure is not None:
            err = RegistryError(f"{SINGULAR[self.kind]} {shown(name)}{at} comes from plugin {failure.provider}, "
                                f"which failed to import: {reason(failure.error)}")
            err.__cause__ = failure.error
            return err
        known = sorted(set(self._entries) | set(self._entry_points()))
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        msg = f"unknown {SINGULAR[self.kind]} {shown(name)}{at}."
        msg += f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        msg += f" Registered {self.kind}: {', '.join(known) or 'none'}."
        broken = [f for f in self._failures.values()]
        if broken:
            msg += " Plugins that failed to import: " + "; ".join(
                f"{f.provider} ({f.name}: {reason(f.error)})" for f in broken)
            err = RegistryError(msg)
            err.__cause__ = broken[0].error
            return err
        return RegistryError(msg)

    def entries(self) -> list[Entry]:
        """Every component of this kind, importing all plugins (for --list and contract tests)."""
        ensure_builtins()
        for name, candidates in self._entry_points().items():
            if name not in self._entries and name not in self._failures:
                try:
                    self._load_entry_point(name, candidates)
                except RegistryError as exc:
                    self._failures[name] = PluginFailure(self.kind, name, "several", exc)
        return [self._entries[n] for n in sorted(self._entries)]

    def failures(self) -> list[PluginFailure]:
        return list(self._failures.values())

    def state(self) -> tuple[dict[str, Entry], dict[str, PluginFailure]]:
        """What this registry has loaded and failed to load, to `restore` later (`vatt.testing.plugins`)."""
        return dict(self._entries), dict(self._failures)

    def restore(self, state: tuple[dict[str, Entry], dict[str, PluginFailure]]) -> None:
        self._entries, self._failures = dict(state[0]), dict(state[1])

    def _builtin_clash(self, name: str, candidates: list[metadata.EntryPoint]) -> str | None:
        """Which plugins declare ``name`` although vatt (or another package's ``@register``) already has it: such a
        plugin is never loaded, and a config that names it would silently get the other component."""
        entry = self._entries[name]
        others = [ep for ep in candidates if _dist_name(ep) != entry.provider]
        if not others:
            return None
        claims = ", ".join(f"plugin {_dist_name(ep)} ({ep.value})" for ep in others)
        return (f"{SINGULAR[self.kind]} name {name!r} is claimed by {entry.source} (package {entry.provider}) and by "
                f"{claims}")

    def shadowed(self) -> list[str]:
        """A line for each name that a plugin declares and a registered component already has (for --list)."""
        ensure_builtins()
        clashes = (self._builtin_clash(name, candidates) for name, candidates in self._entry_points().items()
                   if name in self._entries)
        return [clash for clash in clashes if clash]

    def names(self) -> list[str]:
        ensure_builtins()
        return sorted(set(self._entries) | set(self._entry_points()))


def _dist_name(ep: metadata.EntryPoint) -> str:
    return ep.dist.name if ep.dist is not None else "?"


REGISTRIES: dict[str, Registry] = {kind: Registry(kind) for kind in KINDS}
_builtins_lock = threading.RLock()
_builtins_state: dict[str, Any] = {"loaded": False, "loading": False, "error": None}


def ensure_builtins() -> None:
    """Import vatt's own component modules once, so their decorators have run.

    An import that fails raises the same error on every later lookup: importing again would run the half of a
    module that did register its components a second time (and fail with "registered twice" instead), and
    treating the built-ins as loaded would make all of their names look unknown.
    """
    with _builtins_lock:
        if _builtins_state["error"] is not None:
            raise _builtins_state["error"]
        if _builtins_state["loaded"] or _builtins_state["loading"]:  # loading: a lookup made while importing
            return
        _builtins_state["loading"] = True
        try:
            importlib.import_module(BUILTINS_MODULE)
        except BaseException as exc:
            _builtins_state["error"] = exc
            raise
        finally:
            _builtins_state["loading"] = False
        _builtins_state["loaded"] = True


def registry(kind: str) -> Registry:
    if kind not in REGISTRIES:
        raise ValueError(f"unknown component kind {kind!r}; kinds are {', '.join(KINDS)}")
    return REGISTRIES[kind]


def register(kind: str, name: str, *, example: dict | None = None):
    """Decorator: register a class or factory function under ``name`` in the registry of ``kind``.

    ``example`` holds the smallest valid keyword arguments; the contract tests build every registered
    component from it, and ``--list`` shows it.
    """
    reg = registry(kind)

    def decorate(obj):
        if not callable(obj):
            raise TypeError(f"@register({kind!r}, {name!r}) needs a class or function, got {obj!r}")
        provider, version = _provider_of(obj)
        reg.add(Entry(kind, name, obj, provider=provider, version=version, example=dict(example or {})))
        return obj

    return decorate


def _provider_of(obj) -> tuple[str, str]:
    return installed.distribution_of(getattr(obj, "__module__", "").split(".")[0])


def get(kind: str, name: str, where: str | None = None) -> Entry:
    return registry(kind).get(name, where)


# signature checks ----------------------------------------------------------------------------------
def parameters(obj) -> dict[str, inspect.Parameter]:
    """Keyword parameters a config node may set for this component (``self`` and *args excluded)."""
    sig = inspect.signature(obj)
    return {p.name: p for p in sig.parameters.values()
            if p.kind not in (inspect.Parameter.VAR_POSITIONAL,)}


def check_kwargs(entry: Entry, kwargs: dict, where: str, injected: Iterable[str] = ()) -> list[str]:
    """All mismatches between ``kwargs`` and the component's signature, each naming its config path."""
    params = parameters(entry.obj)
    injected = set(injected)
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    named = {n: p for n, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
    problems = []
    for key in kwargs:
        if key in injected:
            problems.append(f"{where}.{key}: set by the task, not by the config (remove it)")
        elif key not in named and not accepts_any:
            close = difflib.get_close_matches(key, list(named), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            valid = ", ".join(n for n in named if n not in injected)
            problems.append(f"{where}.{cut(str(key))}: {entry.name} has no argument {shown(key)}{hint} "
                            f"(valid: {valid})")
    hints = _type_hints(entry.obj)
    for key, value in kwargs.items():
        bad = key in named and _type_mismatch(hints.get(key), value)
        if bad:
            problems.append(f"{where}.{key}: expected {bad}, got {shown(value)}")
    for name, p in named.items():
        if p.default is inspect.Parameter.empty and name not in kwargs and name not in injected:
            problems.append(f"{where}: {entry.name} needs {name!r}")
    return problems


def _type_hints(obj) -> dict:
    target = obj.__init__ if inspect.isclass(obj) else obj
    try:
        return typing.get_type_hints(target)
    except Exception:  # unresolvable annotations only lose the type check
        return {}


_SIMPLE = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}


def _type_mismatch(hint, value) -> str | None:
    """Name of the expected type when ``value`` plainly does not fit a simple annotation."""
    if hint is None or value is None:
        return None
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, _union_type()) else (hint,)
    options = tuple(o for o in options if o is not type(None))
    simple = [o for o in options if o in _SIMPLE]
    if len(simple) != len(options):
        return None  # containers, tensors, unions with non-simple types: not checked here
    for o in simple:
        ok = _SIMPLE[o]
        if isinstance(value, ok) and not (o is not bool and isinstance(value, bool)):
            return None
    return " or ".join(o.__name__ for o in simple)


def _union_type():
    import types
    return types.UnionType


def build(kind: str, node: dict, where: str, *, reserved: Iterable[str] = (), **injected):
    """Construct the component a config node names; ``reserved`` keys belong to the caller."""
    entry = get(kind, node["type"], where)
    kwargs = {k: v for k, v in node.items() if k != "type" and k not in set(reserved)}
    problems = check_kwargs(entry, kwargs, where, injected)
    if problems:
        raise ConfigError(problems)
    try:
        return entry.obj(**kwargs, **injected)
    except (ValueError, TypeError) as exc:  # the component refused these values: say where they came from
        raise ConfigError([f"{where} ({entry.name}): {exc}"]) from exc


def describe(entry: Entry) -> str:
    doc = inspect.getdoc(entry.obj) or ""
    return doc.splitlines()[0] if doc else ""


def all_entries(kinds: Iterable[str] = KINDS) -> dict[str, list[Entry]]:
    return {kind: registry(kind).entries() for kind in kinds}


__all__ = ["KINDS", "SINGULAR", "Entry", "Registry", "register", "registry",
           "get", "build", "check_kwargs", "parameters", "all_entries", "describe", "ensure_builtins"]
