#!/usr/bin/env python3
"""Adds to symbols.txt the functions a start still faults on, outside the listed ones.

usage: faults.py BINARY SYMBOLS_FILE WASM

`-Z instrument-mcount` sees only the functions that call `mcount`: not the standard library's
(which is prebuilt), and not the instances that the traced build inlined but a normal build
keeps. `perf record -e page-faults` on a normal build (linked with the current list) catches
them: each fault on the binary's code names the function that touched a page first. Runs a
cached `wasmpipe run` of WASM and `wasmpipe demo`, and appends the new functions.
"""
import bisect
import os
import re
import subprocess
import sys
import tempfile

from order import functions  # the same table of the binary's functions


def faulting_functions(binary, command, env, table, starts):
    with tempfile.NamedTemporaryFile(suffix=".data") as data:
        subprocess.run(["perf", "record", "-q", "-e", "page-faults", "-c", "1", "-d", "-o", data.name, "--"] + command,
                       env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        script = subprocess.run(["perf", "script", "-i", data.name, "-F", "pid,addr", "--show-mmap-events"],
                                capture_output=True, text=True, check=True).stdout
    bases, found = {}, []
    for line in script.splitlines():
        mmap = re.search(r" (\d+)/\d+: \[(0x[0-9a-f]+)\((0x[0-9a-f]+)\) @ (\S+).*?\]: \S+ (.*)$", line)
        if "PERF_RECORD_MMAP" in line:
            if mmap and mmap.group(5).strip() == binary and int(mmap.group(4), 16) == 0:
                bases[mmap.group(1)] = int(mmap.group(2), 16)
            continue
        fields = line.split()
        if len(fields) != 2 or not fields[0].isdigit():
            continue
        # A forked runner keeps its parent's mappings (and pid's first mmap events).
        base = bases.get(fields[0]) or (next(iter(bases.values())) if len(bases) == 1 else None)
        if base is None:
            continue
        address = int(fields[1], 16) - base
        index = bisect.bisect_right(starts, address) - 1
        if index >= 0 and address < table[index][0] + table[index][1]:
            found.append(table[index][2])
    return found


def main():
    binary, symbols, wasm = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3]
    table = functions(binary)
    starts = [start for start, _, _ in table]
    with open(symbols) as listed:
        known = {line.strip() for line in listed if line.strip() and not line.startswith("#")}
    env = dict(os.environ, WASMPIPE_CACHE_DIR=tempfile.mkdtemp())
    run = [binary, "run", wasm]
    subprocess.run(run, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    added = []
    for command in [run] * 4 + [[binary, "demo"]]:
        for name in faulting_functions(binary, command, env, table, starts):
            if name not in known:
                known.add(name)
                added.append(name)
    with open(symbols, "a") as listed:
        listed.write("".join(name + "\n" for name in added))
    print(f"{len(added)} functions added", file=sys.stderr)


if __name__ == "__main__":
    main()
