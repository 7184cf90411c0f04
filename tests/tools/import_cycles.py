#!/usr/bin/env python3
"""Lists the import cycles among the app crate's modules (src/), from its `use crate::` and
`crate::` paths. Exit status 1 when there is a cycle.

A module is a file under src/ (`src/a/b.rs` and `src/a/b/mod.rs` are `a::b`); `crate::a::b::C`
counts as an import of the longest module path that exists. Test modules (`#[cfg(test)]` to
the end of the file) are ignored: they may reach anywhere.
"""

import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2] / "src"


def module_of(path):
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return "::".join(parts) or "crate"


def main():
    files = {module_of(p): p for p in ROOT.rglob("*.rs")}
    modules = set(files)
    edges = {m: set() for m in modules}
    for module, path in files.items():
        text = path.read_text()
        cut = text.find("#[cfg(test)]")
        if cut != -1:
            text = text[:cut]
        # `use crate::{a, b::{c, d}}` and inline `crate::x::y` paths.
        # `super::` is the parent of this module (of this file's module, for a `mod.rs`).
        parent = module.rsplit("::", 1)[0] if "::" in module else ""
        is_dir = path.name == "mod.rs"
        base = module if is_dir else parent
        relative = lambda rest: f"{base.rsplit('::', 1)[0] if is_dir and '::' in base else ('' if is_dir else base)}::{rest}".strip(":")
        uses = [(u, "") for u in re.findall(r"use\s+crate::([^;]+);", text, re.S)]
        uses += [(u, "") for u in re.findall(r"(?<!use )crate::([a-z_][a-z_0-9:]*)", text)]
        uses += [(u, "super") for u in re.findall(r"use\s+super::([^;]+);", text, re.S)]
        uses += [(u, "super") for u in re.findall(r"(?<![a-z_:])super::([a-z_][a-z_0-9:]*)", text)]
        for use, kind in uses:
            for path_text in expand(use):
                full = relative(path_text) if kind == "super" else path_text
                target = longest(full, modules)
                if target and target != module:
                    edges[module].add(target)
    cycles = strongly_connected(edges)
    for c in cycles:
        print("cycle:", " -> ".join(sorted(c)))
    if not cycles:
        print("no import cycle among", len(modules), "modules")
    return 1 if cycles else 0


def expand(use):
    """`a::{b, c::{d}}` -> [`a::b`, `a::c::d`]."""
    use = re.sub(r"\s+", "", use)
    out = []

    def walk(prefix, rest):
        if "{" not in rest:
            for item in rest.split(","):
                if item:
                    out.append(prefix + item.split(" as ")[0])
            return
        head, _, tail = rest.partition("{")
        depth, i = 1, 0
        while depth:
            depth += {"{": 1, "}": -1}.get(tail[i], 0)
            i += 1
        inner, after = tail[: i - 1], tail[i:]
        items, depth, current = [], 0, ""
        for ch in inner:
            if ch == "," and depth == 0:
                items.append(current)
                current = ""
                continue
            depth += {"{": 1, "}": -1}.get(ch, 0)
            current += ch
        items.append(current)
        for item in items:
            walk(prefix + head, item)
        if after.strip(","):
            walk(prefix, after.strip(","))

    walk("", use)
    return out


def longest(path_text, modules):
    parts = [p for p in path_text.split("::") if p and p != "self"]
    for n in range(len(parts), 0, -1):
        candidate = "::".join(parts[:n])
        if candidate in modules:
            return candidate
    return None


def strongly_connected(edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(component)

    for v in edges:
        if v not in index:
            visit(v)
    return out


if __name__ == "__main__":
    sys.exit(main())
