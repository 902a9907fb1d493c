#!/usr/bin/env python3
"""Counts the public items of a crate whose rustdoc has no code example.

Reads the rustdoc JSON of the crate (built with `--output-format json`), walks
everything reachable from the crate root through public modules and
re-exports, and lists each public type, trait, function and inherent method
whose documentation has no fenced code block. Fields, variants, constants,
trait-impl methods (Display, From, ...) and hidden items are not counted: their
docs are a line, and the type's example shows them.

Usage: doc_examples.py target/doc/CRATE.json [--list]
Exit status 1 if any item lacks an example.
"""
import json
import sys

COUNTED = {"struct", "enum", "trait", "function", "union"}


def main() -> int:
    path = sys.argv[1]
    listing = "--list" in sys.argv
    with open(path) as f:
        doc = json.load(f)
    index = doc["index"]
    root = str(doc["root"])
    missing, counted, seen = [], 0, set()

    def has_example(item) -> bool:
        return "```" in (item.get("docs") or "")

    def hidden(item) -> bool:
        attrs = json.dumps(item.get("attrs") or [])
        return "doc(hidden)" in attrs.replace(" ", "") or "hidden" in attrs and "doc" in attrs

    def check(item, name):
        nonlocal counted
        counted += 1
        if not has_example(item):
            span = item.get("span") or {}
            missing.append(f"{name}  ({span.get('filename', '?')})")

    def visit(item_id, path):
        key = str(item_id)
        if key in seen or key not in index:
            return
        seen.add(key)
        item = index[key]
        if hidden(item):
            return
        kind, inner = next(iter(item["inner"].items()))
        name = item.get("name") or ""
        here = (f"{path}::{name}" if path else name) if name else path
        if kind == "module":
            for child in inner["items"]:
                child_item = index.get(str(child))
                if child_item is None:
                    continue
                if child_item.get("visibility") != "public":
                    continue
                visit(child, here)
        elif kind == "use":
            target = inner.get("id")
            if target is None:
                return
            if inner.get("is_glob"):
                target_item = index.get(str(target))
                if target_item and "module" in target_item["inner"]:
                    for child in target_item["inner"]["module"]["items"]:
                        child_item = index.get(str(child))
                        if child_item and child_item.get("visibility") == "public":
                            visit(child, path)
                return
            visit(target, path)
        elif kind in COUNTED:
            check(item, here)
            for impl_id in inner.get("impls", []) if isinstance(inner, dict) else []:
                impl = index.get(str(impl_id))
                if impl is None:
                    continue
                body = impl["inner"]["impl"]
                if body.get("trait") is not None or body.get("is_synthetic") or body.get("blanket_impl"):
                    continue
                for method_id in body["items"]:
                    method = index.get(str(method_id))
                    if method is None or method.get("visibility") != "public" or hidden(method):
                        continue
                    if "function" in method["inner"]:
                        check(method, f"{here}::{method['name']}")
            if kind == "trait":
                for method_id in inner.get("items", []):
                    method = index.get(str(method_id))
                    if method is not None and "function" in method["inner"]:
                        check(method, f"{here}::{method['name']}")

    visit(root, "")
    if listing:
        for name in sorted(missing):
            print(name)
    print(f"{counted - len(missing)} of {counted} public items have a doc example; {len(missing)} have none")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
