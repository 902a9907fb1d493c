#!/usr/bin/env python3
"""Fails unless README.md shows each snippet file verbatim in a fenced block.

The snippets are compiled and run by the binding test scripts (the C one under
ASan/UBSan, the Python one by pytest), so the README's copies run as written.
"""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SNIPPETS = {
    "c": ROOT / "bindings/c/tests/readme_snippet.c",
    "python": ROOT / "bindings/uniffi/tests/readme_snippet.py",
}


def main() -> int:
    readme = (ROOT / "README.md").read_text()
    failed = False
    for language, path in SNIPPETS.items():
        block = f"```{language}\n{path.read_text().rstrip()}\n```\n"
        if block not in readme:
            print(f"README.md does not show {path.relative_to(ROOT)} verbatim as a ```{language} block")
            failed = True
    if not failed:
        print(f"README.md shows all {len(SNIPPETS)} tested snippets verbatim")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
