"""What to index: the media files of a folder (searched recursively), of a manifest, or of a dataset config.

A dataset config is a vatt config whose `data.eval` (or `data.<split>`) names a dataset, or a YAML file that
is itself a dataset node (`{type: msrvtt, root: ...}`); the dataset is built as a run builds it and its
entries' files are indexed, each whole (time ranges of entries are not kept: search cuts its own windows).
"""
from __future__ import annotations

from pathlib import Path

from vatt import config as cfglib
from vatt.data.datasets.base import MEDIA_EXTENSIONS
from vatt.data.datasets.manifest import read_manifest
from vatt.errors import UserError

MANIFEST_SUFFIXES = (".jsonl", ".csv")
CONFIG_SUFFIXES = (".yaml", ".yml")


def media_files(source: str | Path, split: str = "eval") -> list[str]:
    """Absolute paths of the media files `source` names, each once, in a stable order."""
    source = Path(source).expanduser()
    if source.is_dir():
        found = [str(p.resolve()) for p in sorted(source.rglob("*"))
                 if p.suffix.lower() in MEDIA_EXTENSIONS and p.is_file()]
        what = f"{source}: no media files ({', '.join(MEDIA_EXTENSIONS)}) in this folder or below"
    elif source.is_file() and source.suffix.lower() in MANIFEST_SUFFIXES:
        try:
            found = [entry.path for entry in read_manifest(source)]
        except ValueError as exc:
            raise UserError(f"manifest {exc}") from None
        what = f"{source}: the manifest lists no files"
    elif source.is_file() and source.suffix.lower() in CONFIG_SUFFIXES:
        found = [entry.path for entry in _entries(_dataset(source, split))]
        what = f"{source}: the dataset has no files"
    elif source.exists():
        raise UserError(f"{source}: not a folder, a manifest ({', '.join(MANIFEST_SUFFIXES)}) or a dataset config "
                        f"({', '.join(CONFIG_SUFFIXES)})")
    else:
        raise UserError(f"{source}: no such folder or file")
    unique = list(dict.fromkeys(found))
    if not unique:
        raise UserError(what)
    return unique


def _dataset(path: Path, split: str):
    from vatt.tasks.builders import build_dataset  # the run's own builder, so a config means what it means there
    cfg = cfglib.load(path)
    if "data" in cfg:
        node, where = (cfg.get("data") or {}).get(split), f"{path}: data.{split}"
    else:
        node, where = cfg, str(path)
    if not isinstance(node, dict) or "type" not in node:
        raise UserError(f"{where}: expected a dataset node with a type (a config with data.{split}, or a dataset "
                        f"node such as {{type: manifest, path: ...}})")
    return build_dataset(node, where)


def _entries(dataset) -> list:
    """The ClipEntries of a dataset, a mixture's children's one after the other."""
    if hasattr(dataset, "entries"):
        return list(dataset.entries)
    if hasattr(dataset, "children"):
        return [entry for child in dataset.children for entry in _entries(child)]
    raise UserError(f"{getattr(dataset, 'name', type(dataset).__name__)}: this dataset does not list its files "
                    f"(packed shards?); index the folder or the manifest they came from instead")
