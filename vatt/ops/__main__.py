"""``python -m vatt.ops [--json]``: which implementation serves each vatt op on each device type."""
from __future__ import annotations

import argparse
import json

from vatt.ops import implementations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vatt.ops", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    report = implementations()
    if parser.parse_args(argv).json:
        print(json.dumps(report, indent=2))
        return 0
    extension = report["extension"]
    print(f"torch {report['torch']}; kernels from {extension['source']}"
          + (f" ({extension['path']}, built for torch {extension['built_for_torch']})" if extension["path"] else ""))
    for note in extension["notes"]:
        print(f"  note: {note}")
    for op, devices in report["ops"].items():
        print(f"{op}:")
        for device, implementation in devices.items():
            print(f"  {device:5s} {implementation}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
