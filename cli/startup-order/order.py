#!/usr/bin/env python3
"""Turns start-up traces into a symbol ordering file for the linker.

usage: order.py TRACED_BINARY TRACE[:LABELS]... > symbols.txt

Each TRACE is the stderr of a traced run (`T <label> <hex address>` lines, then
`T <label> anchor <address of startup_trace::dump>`, see host/src/startup_trace.rs). LABELS, a
comma-separated list, keeps only those processes' lines (for example `runner`). Every address is
mapped to the function that contains it, and the functions are printed once each, in the order
they were first entered: the CLI's, then its runner's, then the other traces'.
"""
import bisect
import subprocess
import sys


def functions(binary):
    """The binary's functions as sorted (start, size, mangled name); labels of size 0 are left
    out, so that an address inside a function maps to the function."""
    listing = subprocess.run(["nm", "--defined-only", "-S", binary], capture_output=True, text=True, check=True)
    found = []
    for line in listing.stdout.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[2] in "tTwW" and int(fields[1], 16) > 0:
            found.append((int(fields[0], 16), int(fields[1], 16), fields[3]))
    found.sort()
    return found


def main():
    binary, traces = sys.argv[1], sys.argv[2:]
    table = functions(binary)
    starts = [start for start, _, _ in table]
    anchor = [start for start, _, name in table if "13startup_trace4dump" in name]
    if len(anchor) != 1:
        sys.exit(f"{binary} has no single startup_trace::dump: was it built with --cfg wasmpipe_startup_trace?")
    ordered, seen = [], set()
    for spec in traces:
        path, _, labels = spec.partition(":")
        wanted = set(labels.split(",")) if labels else None
        entries, anchors = {}, {}
        with open(path, errors="replace") as trace:
            for line in trace:
                fields = line.split()
                if len(fields) < 3 or fields[0] != "T" or (wanted and fields[1] not in wanted):
                    continue
                if fields[2] == "anchor":
                    anchors[fields[1]] = int(fields[3], 16)
                else:
                    entries.setdefault(fields[1], []).append(int(fields[2], 16))
        for label in sorted(entries, key=lambda label: label != "cli"):
            if label not in anchors:
                sys.exit(f"{path}: the {label} trace has no anchor line (cut short?)")
            shift = anchors[label] - anchor[0]
            for address in entries[label]:
                index = bisect.bisect_right(starts, address - shift) - 1
                if index >= 0:
                    start, size, name = table[index]
                    if address - shift < start + size and name not in seen:
                        seen.add(name)
                        ordered.append(name)
    print(f"{len(ordered)} functions", file=sys.stderr)
    sys.stdout.write("".join(name + "\n" for name in ordered))


if __name__ == "__main__":
    main()
