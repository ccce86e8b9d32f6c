"""``python -m cogview2.web [--weights DIR] [--host H] [--port P]``: same as ``cogview2 serve``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .server import add_serve_command


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` as the ``serve`` command and run it; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m cogview2.web")
    add_serve_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args))
    except (ValueError, FileNotFoundError) as err:
        print(f"cogview2 serve: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
