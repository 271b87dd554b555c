"""Write the dashboards to grafana/dashboards/, or check the committed files are current.

    $ hostagent dashboards
    wrote /home/me/hostagent/grafana/dashboards/cpu.json
    /home/me/hostagent/grafana/dashboards/memory.json is up to date
    ...
    $ hostagent dashboards --check
    hostagent dashboards: /home/me/hostagent/grafana/dashboards/cpu.json is out of date; run `hostagent dashboards`
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..project import ROOT, shown, write_or_check
from .boards import build_all

DEFAULT_OUTPUT = ROOT / "grafana" / "dashboards"


def render(board: Dict[str, Any]) -> str:
    """The committed text of one dashboard: stable key order, two-space indent."""
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def expected_files(thresholds_path: Optional[Path] = None) -> Dict[str, str]:
    """File name -> content of every dashboard, thresholds read from ``thresholds_path``."""
    from ..alerting import thresholds  # loaded late: a broken thresholds file is reported by main()

    th = thresholds.load(thresholds_path)
    return {f"{name}.json": render(board) for name, board in build_all(th).items()}


def strays(output: Path, expected: Dict[str, str]) -> List[Path]:
    """Dashboard files in ``output`` the generator does not make."""
    return [path for path in sorted(output.glob("*.json")) if path.name not in expected]


def main(argv: Optional[List[str]] = None) -> int:
    """`hostagent dashboards [--check]`: 0 when written or current, 1 when stale, 2 on bad input."""
    parser = argparse.ArgumentParser(prog="hostagent dashboards", description="Generate the Grafana dashboards from code and config/alerting.yaml.")
    parser.add_argument("--check", action="store_true", help="only check the files are current; exit 1 if not")
    parser.add_argument("--output-dir", "--output", dest="output", type=Path, default=DEFAULT_OUTPUT, help=f"dashboards directory (default {DEFAULT_OUTPUT})")
    parser.add_argument("--config", "--thresholds", dest="thresholds", type=Path, default=None, help="alert thresholds file (default config/alerting.yaml)")
    args = parser.parse_args(argv)
    try:
        expected = expected_files(args.thresholds)
    except (OSError, ValueError) as exc:  # ThresholdsError is a ValueError
        print(f"hostagent dashboards: {exc}", file=sys.stderr)
        return 2
    status = 0
    for name, text in expected.items():
        status = max(status, write_or_check("hostagent dashboards", args.output / name, text, args.check))
    for path in strays(args.output, expected):
        # Grafana provisions every file in the directory: a left-over board would still be served.
        print(f"hostagent dashboards: {shown(path)} is not made by the generator; remove it", file=sys.stderr)
        status = max(status, 1 if args.check else 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
