#!/usr/bin/env bash
# test/layout_check.sh — the C source layout, as TAP.
#
#   bash test/layout_check.sh          (from anywhere; PG_CONFIG as for make)
#
# Calls between files, from the objects' symbol tables (nm): file A calls
# file B when A leaves undefined a function that B defines (T).  No file may
# reach itself through such calls, directly (A calls B, B calls A) or in a
# longer loop: one "ok" per source file, or "not ok" naming the loop.  Then
# no src/*.c or src/*.h may be over 900 lines.  Builds the objects first
# when one is missing or older than its source.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

for c in src/*.c; do
	o="${c%.c}.o"
	if [ ! -f "$o" ] || [ "$c" -nt "$o" ]; then
		make -s "PG_CONFIG=${PG_CONFIG:-pg_config}" >/dev/null 2>&1 ||
			{ echo "Bail out! the objects do not build"; exit 1; }
		break
	fi
done

for c in src/*.c; do
	nm "${c%.c}.o" | awk -v f="$c" '$1 == "U" { print f, "U", $2 } $2 == "T" { print f, "T", $3 }'
done | python3 -c '
import glob, sys

MAX_LINES = 900
defined, used = {}, {}
for line in sys.stdin:
    f, kind, sym = line.split()
    used.setdefault(f, set())
    if kind == "T":
        defined[sym] = f
    else:
        used[f].add(sym)
calls = {f: sorted({defined[s] for s in syms if defined.get(s, f) != f})
         for f, syms in used.items()}

def loop_through(start):
    """the shortest loop of calls from start back to start, or None"""
    came_from, queue = {start: None}, [start]
    while queue:
        f = queue.pop(0)
        for g in calls[f]:
            if g == start:
                path = [f]
                while came_from[path[-1]] is not None:
                    path.append(came_from[path[-1]])
                return path[::-1] + [start]
            if g not in came_from:
                came_from[g] = f
                queue.append(g)
    return None

n = 0
for f in sorted(calls):
    n += 1
    loop = loop_through(f)
    if loop is None:
        print("ok %d - no call cycle through %s (calls %s)"
              % (n, f, ", ".join(calls[f]) or "nothing"))
    else:
        print("not ok %d - call cycle: %s" % (n, " -> ".join(loop)))

n += 1
long = []
for f in sorted(glob.glob("src/*.c") + glob.glob("src/*.h")):
    with open(f, encoding="utf-8", errors="replace") as fh:
        lines = sum(1 for _ in fh)
    if lines > MAX_LINES:
        long.append("%s (%d)" % (f, lines))
if long:
    print("not ok %d - no file over %d lines: %s" % (n, MAX_LINES, ", ".join(long)))
else:
    print("ok %d - no file over %d lines" % (n, MAX_LINES))
print("1..%d" % n)
'
