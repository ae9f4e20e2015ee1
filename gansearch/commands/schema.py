"""`gansearch schema`: the JSON Schema of a search-space file or a training configuration.

Editors with a YAML language server read it (the shipped files name schemas/ in their first
line), and so can any tool that checks files before they reach gansearch. The schema says what
each field may hold; rules that span fields are checked only by gansearch itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gansearch.files import write_text
from gansearch.space import space_schema
from gansearch.train_config import config_schema

SCHEMAS = {"space": space_schema, "config": config_schema}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `gansearch schema`."""
    parser.add_argument(
        "kind",
        choices=tuple(SCHEMAS),
        help="space: a search-space file (--space); config: a training configuration (--config)",
    )
    parser.add_argument("--out", type=Path, help="write it to this file instead of stdout")


def render(kind: str) -> str:
    """The schema as the committed files under schemas/ hold it."""
    return json.dumps(SCHEMAS[kind](), indent=2) + "\n"


def run(args: argparse.Namespace) -> int:
    text = render(args.kind)
    if args.out is None:
        sys.stdout.write(text)
    else:
        write_text(args.out, text)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0
