#!/usr/bin/env python3
"""Core's folders as layers (docs/architecture.md): a file in core/<folder>/ may include headers of
its own folder and of folders in lower layers only. Fails naming every include that goes up a layer,
unless it is one of the KNOWN_UPWARD edges below (debt that docs/architecture.md explains, each to be
removed by moving code); an entry that no longer occurs also fails, so the list only shrinks. Fails
too on a source file of core/ that core/CMakeLists.txt does not list, and on a folder's library there
that links a library of a higher layer.

    python3 tests/static/check_layers.py [ROOT]
"""
import pathlib
import re
import sys

# Lowest first; folders on one line form one layer and may include each other.
LAYERS = [
    ["util"],
    ["io", "runtime", "kernels"],
    ["quant"],
    ["formats"],  # codecs used in both directions: GGUF container and blocks, bit packing, GPTQ/AWQ packing
    ["text"],
    ["model"],
    ["eval"],
    ["rundir"],  # the run directory's files (run.json, stats/, events.jsonl, block names), torch-free
    ["pipeline", "methods"],  # run settings and the run loop, and the methods it drives
    ["export"],
    ["api"],
    ["protocol"],
]

# (file, included header): includes that go up today.
KNOWN_UPWARD = set()

INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_0-9]+)/[^"]+"', re.M)
LIBRARY = re.compile(r"tessera_core_library\(\s*(\w+)([^)]*)\)")


def cmake_problems(core, layer_of):
    """core/CMakeLists.txt: every source file of core/ is listed (there is no GLOB, so an unlisted file
    would never be compiled), and each folder's library links only libraries of its own and lower
    layers (an upward link only where KNOWN_UPWARD has an include between the two folders)."""
    text = (core / "CMakeLists.txt").read_text(encoding="utf-8")
    problems = []
    for path in sorted(core.rglob("*")):
        rel = path.relative_to(core).as_posix()
        if path.suffix in (".cpp", ".cu") and not re.search(r"(?<![\w/])" + re.escape(rel) + r"\b", text):
            problems.append(f"core/{rel}: not listed in core/CMakeLists.txt (add it to its folder's library)")
    folder_of, links_of = {}, {}
    for m in LIBRARY.finditer(text):
        sources, _, links = m.group(2).partition("LINKS")
        folders = set(re.findall(r"\b([a-z_0-9]+)/[a-z_0-9]+\.(?:cpp|cu)\b", sources))
        if len(folders) != 1:
            problems.append(f"core/CMakeLists.txt: {m.group(1)} has sources of {len(folders)} folders, not one")
            continue
        folder_of[m.group(1)] = folders.pop()
        links_of[m.group(1)] = re.findall(r"\btessera_\w+", links)
    allowed = {(f.split("/")[0], h.split("/")[0]) for f, h in KNOWN_UPWARD}
    for lib, links in links_of.items():
        for dep in links:
            own, target = folder_of[lib], folder_of.get(dep)
            if target and layer_of[target] > layer_of[own] and (own, target) not in allowed:
                problems.append(f"core/CMakeLists.txt: {lib} ({own}, layer {layer_of[own]}) links {dep} "
                                f"({target}, layer {layer_of[target]})")
    return problems


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[2])
    core = root / "core"
    layer_of = {folder: i for i, layer in enumerate(LAYERS) for folder in layer}
    folders = sorted(p.name for p in core.iterdir() if p.is_dir())
    unknown = [f for f in folders if f not in layer_of]
    if unknown:
        print("check_layers: core folders without a layer in tests/static/check_layers.py: " + ", ".join(unknown))
        return 1
    upward, seen_known = [], set()
    for path in sorted(core.rglob("*")):
        if path.suffix not in (".h", ".cpp", ".cu") or not path.is_file():
            continue
        rel = path.relative_to(core).as_posix()
        own = rel.split("/")[0]
        text = path.read_text(encoding="utf-8", errors="replace")
        for m in INCLUDE.finditer(text):
            target = m.group(1)
            if target not in layer_of or layer_of[target] <= layer_of[own]:
                continue
            header = m.group(0).split('"')[1]
            if (rel, header) in KNOWN_UPWARD:
                seen_known.add((rel, header))
                continue
            line = text.count("\n", 0, m.start()) + 1
            upward.append(f"core/{rel}:{line}: {own} (layer {layer_of[own]}) includes {header} (layer {layer_of[target]})")
    stale = sorted(KNOWN_UPWARD - seen_known)
    cmake = cmake_problems(core, layer_of)
    for u in upward + cmake:
        print(u)
    for f, h in stale:
        print(f"check_layers: the known upward include {f} -> {h} is gone: remove it from KNOWN_UPWARD")
    if upward:
        print(f"check_layers: {len(upward)} include(s) go up a layer; move the code down, or the include up "
              "(layers in tests/static/check_layers.py and docs/architecture.md)")
    if upward or stale or cmake:
        return 1
    print(f"check_layers: {len(folders)} folders in {len(LAYERS)} layers, no new upward include "
          f"({len(KNOWN_UPWARD)} known, listed in the script); core/CMakeLists.txt lists every source and "
          "links down only")
    return 0


if __name__ == "__main__":
    sys.exit(main())
