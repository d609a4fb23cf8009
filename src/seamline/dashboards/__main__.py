"""`python -m seamline.dashboards [OUT_DIR]`: regenerate the committed Grafana files (default: ./grafana)."""

from __future__ import annotations

import argparse
from pathlib import Path

from seamline.dashboards.generate import generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seamline.dashboards", description=__doc__)
    parser.add_argument("out_dir", nargs="?", default="grafana", type=Path, help="output directory (default: ./grafana)")
    args = parser.parse_args(argv)
    for path in generate(args.out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
