"""`aisdk trace`: traces from a span file as a terminal waterfall."""

from __future__ import annotations

import argparse
import shutil
import sys
from typing import Any

from aisdk.cli.errors import CommandError

_KNOWN = "an aisdk span dump, OTLP/JSON or ConsoleSpanExporter output"


def cmd_trace(args: argparse.Namespace) -> int:
    from runtime.telemetry import load_spans, render_waterfall

    spans = load_spans(args.file)
    use_color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    width = args.width or shutil.get_terminal_size((120, 24)).columns
    text = render_waterfall(spans, width=width, color=use_color, trace_id=args.trace)
    if not text:
        raise CommandError(f"no trace starting with {args.trace!r} in {args.file}")
    print(text)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "trace",
        help="show traces from a span file as a waterfall",
        description=f"Show the traces in FILE ({_KNOWN}; '-' for stdin) as span trees with durations as bars.",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--trace", metavar="ID", help="only the trace whose id starts with ID")
    p.add_argument("--width", type=int, help="line width (default: the terminal's)")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    p.set_defaults(func=cmd_trace)
