"""``python -m vatt.run CONFIG [key.sub=value ...] [--summary] [--json]`` and ``python -m vatt.run --list [KIND]``.

Loads the config (with its ``extends`` and the overrides), validates all of it against the task and the
registered components, then hands it to the task. User mistakes end in a one-screen message and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vatt import config as cfglib
from vatt.errors import UserError
from vatt.messages import reason
from vatt.registry import KINDS, all_entries, describe, registry


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m vatt.run", description="Run a vatt config: pre-training, fine-tuning, evaluation.",
        epilog="Overrides: key.sub=value (YAML value), e.g. run.steps=10 run.dir=runs/try "
               "losses.0.weight=2 'data.train={type: synthetic}'.")
    parser.add_argument("config", nargs="?", help="YAML config file")
    parser.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    parser.add_argument("--summary", action="store_true",
                        help="build the model only and print its parameter counts; no data, no training")
    parser.add_argument("--json", action="store_true", help="print --summary / --list as JSON")
    parser.add_argument("--list", nargs="?", const="all", metavar="KIND",
                        help=f"list registered components (kinds: {', '.join(KINDS)})")
    return parser.parse_args(argv)


def list_components(kind: str, as_json: bool) -> str:
    if kind != "all" and kind not in KINDS:
        raise UserError(f"--list {kind}: unknown kind; kinds are {', '.join(KINDS)}")
    kinds = KINDS if kind == "all" else (kind,)
    entries = all_entries(kinds)
    failures = [f for k in kinds for f in registry(k).failures()]
    clashes = [clash for k in kinds for clash in registry(k).shadowed()]
    if as_json:
        listing: dict = {k: [{"name": e.name, "package": e.provider, "version": e.version, "source": e.source,
                              "summary": describe(e)} for e in es] for k, es in entries.items()}
        listing["plugin_failures"] = [{"kind": f.kind, "name": f.name, "package": f.provider,
                                       "error": reason(f.error)} for f in failures]
        listing["warnings"] = clashes
        return json.dumps(listing, indent=2)
    lines = []
    for k, es in entries.items():
        lines.append(f"{k}:")
        width = max((len(e.name) for e in es), default=0)
        for e in es:
            package = f"{e.provider} {e.version}".strip()
            lines.append(f"  {e.name:<{width}}  [{package}]  {describe(e)}")
    for f in failures:
        lines.append(f"plugin {f.provider} failed to load {f.kind} {f.name!r}: {reason(f.error)}")
    for clash in clashes:
        lines.append(f"warning: {clash}; configs that use this name fail until the plugin's entry point is "
                     f"renamed or the plugin uninstalled")
    return "\n".join(lines)


def format_summary(summary: dict) -> str:
    lines = [f"task: {summary['task']}", "parameters:"]
    for name, count in summary["parameters"].items():
        lines.append(f"  {name:<24} {count / 1e6:10.2f} M  ({count:,})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.list:
            print(list_components(args.list, args.json))
            return 0
        if args.config is None:
            raise UserError("no config given: python -m vatt.run CONFIG [key=value ...] (or --list)")
        config_path = Path(args.config)
        cfg = cfglib.load(config_path, args.overrides)
        task_name = cfg.get("task")
        if not isinstance(task_name, str):
            raise UserError(f"{config_path}: 'task' must name a registered task, e.g. task: pretrain")
        task = registry("tasks").get(task_name, where="task").obj()
        task.validate(cfg, source=str(config_path), need_data=not args.summary)
        if args.summary:
            summary = task.summary(cfg)
            print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
            return 0
        results = task.run(cfg, config_path)
        if results:
            print(json.dumps(results, indent=2))
        return 0
    except UserError as exc:
        # report=False: a process of a distributed run other than the main one, which reports the same error
        if getattr(exc, "report", True):
            print(f"error: {exc}", file=sys.stderr)
            if exc.__cause__ is not None:
                print(f"  caused by {type(exc.__cause__).__name__}: {exc.__cause__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        # Every stop on request exits with 130 (128 + SIGINT, as a shell reports a Ctrl-C), SIGTERM included.
        # A stop request ends in vatt.engine.faults.TrainingInterrupted, whose one line names the step it saved
        # and which only the main process of a distributed run reports; a second Ctrl-C, or one outside
        # training, is a bare KeyboardInterrupt.
        if getattr(exc, "report", True):
            print(str(exc) or "interrupted; the last checkpoint in the run directory is kept", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
