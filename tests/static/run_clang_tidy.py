#!/usr/bin/env python3
"""clang-tidy 14 (the repository's .clang-tidy: bugprone-* and cert-*) over every core/*.cpp file.

Usage: tests/static/run_clang_tidy.py [--build-dir build] [--jobs N] [--per-file] [FILE ...]

Reads BUILD/compile_commands.json (CMake writes it at configure time; no build is needed) and
checks the translation units of core/ with findings limited to core/ (--header-filter). Exit
status 0 when there is no finding, 1 when there are (listed by file, then counted by check), 2
when clang-tidy-14, clang++-14 or the compile database is missing. CTest runs it as test_clang_tidy.

Speed (a 2-core CI machine): each translation unit includes torch/torch.h, and clang-tidy 14 runs
its matchers over every declaration of the translation unit, system headers included, so a single
file costs ~30 s however small it is. Therefore:
  * the GCC precompiled header CMake made for the torch-based files (-include .../cmake_pch.hxx,
    which clang cannot read) is replaced by a clang PCH of the same header built once with
    clang++-14 (kept in BUILD/clang-tidy/ and rebuilt when the flags or the header change);
  * files with identical compile flags are checked together, as one generated file that includes
    them ("unity" batches, one per job), so the torch headers are traversed once per batch instead
    of once per file. The files' own code is seen exactly as in their own translation units except
    that earlier files of the batch precede them; --per-file checks each translation unit on its
    own (slower, for comparison or if a batch ever fails to compile where the files alone do not);
  * batches run in parallel (--jobs, default: the number of cores).
Findings in headers are reported once however many files include them.
"""

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.realpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CLANG_MAJOR = "14"
DIAG = re.compile(r"^(/[^:]+):(\d+):(\d+): (warning|error): (.*?)(?: \[([^\]]+)\])?$")


def fail(message):
    """Setup errors (a missing tool or compile database): status 2, as opposed to findings (1)."""
    print(message, file=sys.stderr)
    sys.exit(2)


def find_tool(name):
    """clang-tidy-14 / clang++-14, or the unversioned tool when it is version 14."""
    for candidate in (f"{name}-{CLANG_MAJOR}", name):
        path = shutil.which(candidate)
        if not path:
            continue
        out = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
        if re.search(rf"version {CLANG_MAJOR}\.", out):
            return path
    package = {"clang-tidy": f"clang-tidy-{CLANG_MAJOR}", "clang++": f"clang-{CLANG_MAJOR}"}[name]
    fail(f"run_clang_tidy: {name}-{CLANG_MAJOR} not found (Debian: apt-get install {package}, which "
         "installers/install-deps-debian.sh installs)")


def clean_arguments(entry):
    """The entry's compiler arguments without the compiler, output, source file and GCC's PCH flags.

    Returns (arguments, pch_header): pch_header is the header CMake precompiled for this file (GCC's
    -include of cmake_pch.hxx), to be replaced by a clang PCH of it; None when the file has none."""
    args = entry["arguments"] if "arguments" in entry else shlex.split(entry["command"])
    source = os.path.realpath(os.path.join(entry["directory"], entry["file"]))
    out, pch_header, i = [], None, 1  # args[0] is the compiler
    while i < len(args):
        a = args[i]
        if a == "-include" and i + 1 < len(args) and args[i + 1].endswith("cmake_pch.hxx"):
            pch_header = os.path.join(entry["directory"], args[i + 1])
            i += 2
            continue
        if a in ("-o", "-MF", "-MT", "-MQ"):
            i += 2
            continue
        if a in ("-c", "-MD", "-MMD", "-Winvalid-pch") or a.startswith("-fpch-") or a.startswith("-o"):
            i += 1
            continue
        if os.path.realpath(os.path.join(entry["directory"], a)) == source:
            i += 1
            continue
        out.append(a)
        i += 1
    return out, pch_header


UNITY_FILE = re.compile(r"/Unity/unity_[0-9]+_cxx\.cxx$")


def unity_sources(unity_file):
    """The sources a CMake unity file #includes (absolute paths)."""
    with open(unity_file) as f:
        return [os.path.realpath(m) for m in re.findall(r'^#include "([^"]+)"', f.read(), re.M)]


def pch_is_current(pch, directory):
    """Whether the PCH is newer than every header it was built from (its dependency file lists
    them). clang would refuse a stale one, but asking clang costs ~9 s of loading; this, a few ms."""
    try:
        built = os.path.getmtime(pch)
        with open(pch + ".d") as f:
            deps = f.read().replace("\\\n", " ").split(":", 1)[1].split()
        return all(os.path.getmtime(os.path.join(directory, d)) <= built for d in deps)
    except (OSError, IndexError):
        return False


def build_pch(clangxx, directory, args, header, pch_dir):
    """A clang PCH of CMake's precompiled header, built with the files' own flags (clang refuses a
    PCH whose macros or language options differ from the file's). Reused while its headers do not
    change."""
    key = hashlib.sha256(("\0".join(args) + "\0" + header).encode()).hexdigest()[:16]
    pch = os.path.join(pch_dir, f"core-{key}.pch")
    if pch_is_current(pch, directory):
        return pch, 0.0
    start = time.time()
    tmp = f"{pch}.{os.getpid()}.tmp"
    # CMake's header starts with '#pragma GCC system_header', which clang ignores in a main file.
    r = subprocess.run([clangxx, *args, "-Wno-pragma-system-header-outside-header", "-x", "c++-header", header,
                        "-o", tmp, "-MD", "-MF", tmp + ".d"], cwd=directory, capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"run_clang_tidy: building the clang PCH of {header} failed:\n{r.stderr}")
    os.replace(tmp + ".d", pch + ".d")
    os.replace(tmp, pch)
    return pch, time.time() - start


def parse(output):
    """clang-tidy's output as {header line: [lines of the finding]} for warnings and errors."""
    findings, current = {}, None
    for line in output.splitlines():
        if DIAG.match(line):
            current = None if line in findings else findings.setdefault(line, [])
        elif current is not None and not line.startswith("Suppressed ") and "warnings generated" not in line \
                and "warning generated" not in line and not line.startswith("Use -header-filter"):
            current.append(line)
    return findings


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build-dir", default=os.environ.get("TESSERA_BUILD_DIR", os.path.join(REPO, "build")))
    jobs = int(os.environ.get("TESSERA_TIDY_JOBS", 0)) or os.cpu_count() or 1
    parser.add_argument("--jobs", "-j", type=int, default=jobs,
                        help="parallel clang-tidy runs (default: $TESSERA_TIDY_JOBS, else the number of cores)")
    parser.add_argument("--per-file", action="store_true", help="one clang-tidy run per translation unit")
    parser.add_argument("files", nargs="*", help="only these core files (default: every core/*.cpp)")
    opts = parser.parse_args()
    start = time.time()

    clang_tidy, clangxx = find_tool("clang-tidy"), find_tool("clang++")
    database = os.path.join(os.path.abspath(opts.build_dir), "compile_commands.json")
    if not os.path.exists(database):
        fail(f"run_clang_tidy: {database} is missing: configure the build first (cmake -S . -B build)")
    with open(database) as f:
        entries = json.load(f)
    core = os.path.join(REPO, "core") + os.sep
    by_file = {}
    for e in entries:
        path = os.path.realpath(os.path.join(e["directory"], e["file"]))
        # A unity build (TESSERA_UNITY_BUILD) compiles CMake's Unity/unity_N_cxx.cxx files, which
        # #include the sources: each source is checked with its unity file's flags.
        for source in unity_sources(path) if UNITY_FILE.search(path) else [path]:
            if source.startswith(core) and source.endswith(".cpp"):
                by_file[source] = e
    on_disk = sorted(os.path.join(root, n) for root, _, names in os.walk(core) for n in names if n.endswith(".cpp"))
    wanted = [os.path.realpath(f) for f in opts.files] if opts.files else on_disk
    missing = [p for p in wanted if p not in by_file]
    if missing:
        fail("run_clang_tidy: not in the compile database (a core/*.cpp file added since cmake last ran? "
             "configure again): " + " ".join(os.path.relpath(p, REPO) for p in missing))

    work = os.path.join(os.path.abspath(opts.build_dir), "clang-tidy")
    os.makedirs(work, exist_ok=True)
    # Files with identical flags (and directory) form a group; each group gets its PCH if it has one.
    groups = {}
    for path in wanted:
        e = by_file[path]
        args, header = clean_arguments(e)
        groups.setdefault((e["directory"], tuple(args), header), []).append(path)
    pch_seconds = 0.0
    runs = []  # (directory, args, main file, files it covers)
    for n, ((directory, args, header), files) in enumerate(sorted(groups.items(), key=lambda g: -len(g[1]))):
        args = list(args)
        if header:
            pch, seconds = build_pch(clangxx, directory, args, header, work)
            pch_seconds += seconds
            args += ["-include-pch", pch]
        if opts.per_file or len(files) == 1:
            runs += [(directory, args, f, [f]) for f in files]
            continue
        batches = [[] for _ in range(min(opts.jobs, len(files)))]
        for i, f in enumerate(sorted(files, key=os.path.getsize, reverse=True)):
            batches[i % len(batches)].append(f)
        for b, batch in enumerate(batches):
            unity = os.path.join(work, f"unity-{n}-{b}.cpp")
            with open(unity, "w") as u:
                u.write("// Generated by tests/static/run_clang_tidy.py: core files checked in one pass.\n")
                for f in sorted(batch):
                    u.write(f'#include "{f}"  // NOLINT(bugprone-suspicious-include)\n')
            runs.append((directory, args, unity, sorted(batch)))

    header_filter = "^" + re.escape(core)
    config = os.path.join(REPO, ".clang-tidy")

    def tidy(run):
        directory, args, main_file, _ = run
        t = time.time()
        r = subprocess.run([clang_tidy, "--quiet", f"--config-file={config}", f"--header-filter={header_filter}",
                            main_file, "--", *args], cwd=directory, capture_output=True, text=True)
        return r, time.time() - t

    # Largest first so that the batches and the small single files share the cores evenly.
    runs.sort(key=lambda r: -sum(os.path.getsize(f) for f in r[3]))
    findings, failures = {}, []
    with ThreadPoolExecutor(max_workers=max(1, opts.jobs)) as pool:
        for run, (result, seconds) in zip(runs, pool.map(tidy, runs)):
            label = os.path.relpath(run[2], REPO) if len(run[3]) == 1 else f"batch of {len(run[3])} files"
            print(f"run_clang_tidy: {label}: {seconds:.0f} s", flush=True)
            for head, lines in parse(result.stdout + result.stderr).items():
                if head not in findings:
                    findings[head] = lines
                elif lines and not findings[head]:
                    findings[head] = lines
            if result.returncode != 0 and not parse(result.stdout + result.stderr):
                failures.append((run, result))

    for run, result in failures:
        print(f"run_clang_tidy: clang-tidy failed on {run[2]} without a finding:\n{result.stdout}{result.stderr}")

    def order(head):
        m = DIAG.match(head)
        return (m.group(1), int(m.group(2)), int(m.group(3)))

    checks, files = {}, {}
    for head in sorted(findings, key=order):
        m = DIAG.match(head)
        print(head.replace(REPO + os.sep, ""))
        for line in findings[head]:
            print("    " + line.replace(REPO + os.sep, ""))
        for check in (m.group(6) or "clang-diagnostic-error").split(","):
            checks[check] = checks.get(check, 0) + 1
        rel = os.path.relpath(m.group(1), REPO)
        files[rel] = files.get(rel, 0) + 1
    elapsed = time.time() - start
    print(f"run_clang_tidy: {len(wanted)} files in {len(runs)} clang-tidy runs, {opts.jobs} jobs, "
          f"{elapsed:.0f} s (clang PCH build {pch_seconds:.0f} s)")
    if findings:
        print(f"run_clang_tidy: {len(findings)} findings")
        for rel, count in sorted(files.items()):
            print(f"  {count:4d}  {rel}")
        for check, count in sorted(checks.items(), key=lambda c: (-c[1], c[0])):
            print(f"  {count:4d}  {check}")
        print("Fix each, or silence it where it is intentional with '// NOLINT(check-name): reason' on its line "
              "(tests/bench/RESULTS.md lists them).")
        return 1
    if failures:
        return 2
    print("run_clang_tidy: no findings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
