#!/usr/bin/env python3
"""Writes the values table of charts/switchyard/README.md from the `# --` comments in
charts/switchyard/values.yaml (between the README's `values:start` and `values:end` markers).

    python3 tests/tools/chart_readme.py          # rewrite the table
    python3 tests/tools/chart_readme.py --check  # exit 1 if the README is out of date

Every key with a `# --` comment is a row: its dotted path, its type, its default and the
comment. A key without one is documented by the rows of the keys under it."""

import json
import pathlib
import re
import sys

import yaml

CHART = pathlib.Path(__file__).resolve().parents[2] / "charts/switchyard"
START, END = "<!-- values:start -->", "<!-- values:end -->"
KEY = re.compile(r"^(\s*)([A-Za-z][A-Za-z0-9_]*):(.*)$")


def documented_keys(text):
    """(dotted path, description) for every key with a `# --` comment, in file order."""
    rows, stack, pending, block_indent = [], [], None, None
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        if block_indent is not None:
            if not line.strip() or indent > block_indent:
                continue  # inside a block scalar such as `config: |`
            block_indent = None
        stripped = line.strip()
        if stripped.startswith("# --"):
            pending = [stripped[4:].strip()]
            continue
        if stripped.startswith("#"):
            if pending is not None:
                pending.append(stripped[1:].strip())
            continue
        match = KEY.match(line)
        if not match:
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match.group(2)))
        if pending is not None:
            rows.append((".".join(k for _, k in stack), " ".join(pending)))
            pending = None
        if match.group(3).strip() in ("|", ">", "|-", ">-"):
            block_indent = indent
    return rows


def leaf_paths(values, prefix=""):
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from leaf_paths(value, path + ".")
        else:
            yield path


def lookup(values, path):
    for part in path.split("."):
        values = values[part]
    return values


def type_of(value):
    return {bool: "bool", int: "int", float: "number", str: "string", list: "list", dict: "object"}[type(value)]


def default_of(path, value):
    if isinstance(value, str) and "\n" in value:
        return f"see `values.yaml` ({len(value.splitlines())} lines)"
    return "`" + json.dumps(value, separators=(", ", ": ")).replace("|", "\\|") + "`"


def table():
    text = (CHART / "values.yaml").read_text()
    values = yaml.safe_load(text)
    lines = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for path, description in documented_keys(text):
        value = lookup(values, path)
        cells = [f"`{path}`", type_of(value), default_of(path, value), description.replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    readme = CHART / "README.md"
    text = readme.read_text()
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    wanted = f"{before}{START}\n{table()}\n{END}{after}"
    if "--check" in sys.argv:
        values = yaml.safe_load((CHART / "values.yaml").read_text())
        documented = {path for path, _ in documented_keys((CHART / "values.yaml").read_text())}
        missing = [p for p in leaf_paths(values) if not any(p == d or p.startswith(d + ".") for d in documented)]
        if missing:
            print(f"values without a `# --` comment (theirs or a parent's): {', '.join(missing)}")
            return 1
        if wanted != text:
            print(f"{readme} is out of date with values.yaml: run python3 tests/tools/chart_readme.py")
            return 1
        return 0
    readme.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
