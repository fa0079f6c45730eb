#!/usr/bin/env python3
"""Regenerate Resources/Models/catalog.json from the bundles shipped in Resources/Models/.

The catalogue pins each shipped bundle by the SHA-256 of its bundle.json (CervicalAILib.bundles.catalog):
run this after retraining or editing a shipped bundle, and commit the catalogue with the bundle.

    python tools/update_model_catalog.py           # rewrite the catalogue
    python tools/update_model_catalog.py --check   # exit 1 and say what differs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "CervicalAI"))

from CervicalAILib.bundles.catalog import CATALOG_FILE, catalog_document  # noqa: E402
from CervicalAILib.bundles.defaults import DEFAULT_BUNDLES, OPTIONAL_BUNDLES  # noqa: E402
from CervicalAILib.core.atomic import to_json  # noqa: E402

MODELS = ROOT / "Resources" / "Models"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the catalogue is stale")
    args = parser.parse_args(argv)
    text = to_json(catalog_document(MODELS, {**DEFAULT_BUNDLES, **OPTIONAL_BUNDLES}))
    path = MODELS / CATALOG_FILE
    current = path.read_text(encoding="utf-8") if path.is_file() else ""
    if args.check:
        if current != text:
            old = {m["id"]: m for m in json.loads(current)["models"]} if current else {}
            new = {m["id"]: m for m in json.loads(text)["models"]}
            for key in sorted(set(old) | set(new)):
                if old.get(key) != new.get(key):
                    print(f"{CATALOG_FILE}: entry {key!r} is stale (run tools/update_model_catalog.py)")
            return 1
        print(f"{path} matches the shipped bundles ({len(json.loads(text)['models'])} models)")
        return 0
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
