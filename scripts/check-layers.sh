#!/bin/sh
# check-layers.sh - enforce lib/README's layers: a file under lib/FOLDER may
# include "OTHER/x.h" only when OTHER is on a lower layer than FOLDER (its
# own folder is always fine). Every folder under lib/ must be listed.
#
# Usage: scripts/check-layers.sh [ROOT]   (ROOT: the source tree, default .)
# Prints one line per violation, "lib/F/x.c:12: F (layer 1) includes
# table/table.h (layer 3)", and exits 1 when there is any; 0 otherwise.
# Used by `make lint`; tests/system/test_layers.py proves it can fail.
set -eu
root=${1:-.}
readme=$root/lib/README
[ -r "$readme" ] || { echo "check-layers: $readme: not readable" >&2; exit 2; }

# "layer N: a b c" lines -> "a N" pairs.
ranks=$(sed -n 's/^layer \([0-9][0-9]*\):[[:space:]]*\(.*\)$/\1 \2/p' "$readme" |
	awk '{for (i = 2; i <= NF; i++) print $i, $1}')
[ -n "$ranks" ] || { echo "check-layers: $readme: no 'layer N: folders' lines" >&2; exit 2; }

status=0
for dir in "$root"/lib/*/; do
	folder=$(basename "$dir")
	if ! printf '%s\n' "$ranks" | grep -q "^$folder "; then
		echo "lib/$folder: folder not listed in lib/README (add it to a 'layer N:' line)"
		status=1
	fi
done

# One awk pass over every source file: file, line, included folder.
out=$(find "$root/lib" -mindepth 2 -maxdepth 2 -name '*.[ch]' | sort |
	xargs awk -v ranks="$ranks" -v root="$root/" '
	BEGIN {
		n = split(ranks, lines, "\n")
		for (i = 1; i <= n; i++) { split(lines[i], f, " "); rank[f[1]] = f[2] }
	}
	/^[[:space:]]*#[[:space:]]*include[[:space:]]*"[a-z0-9_]+\// {
		path = FILENAME; sub("^" root, "", path)
		split(path, parts, "/"); mine = parts[2]
		inc = $0; sub(/^[^"]*"/, "", inc); sub(/".*$/, "", inc)
		split(inc, ip, "/"); theirs = ip[1]
		if (theirs == mine || !(mine in rank)) next
		if (!(theirs in rank))
			printf "%s:%d: %s includes %s: folder %s is not in lib/README\n", path, FNR, mine, inc, theirs
		else if (rank[theirs] + 0 >= rank[mine] + 0)
			printf "%s:%d: %s (layer %d) includes %s (layer %d)\n", path, FNR, mine, rank[mine], inc, rank[theirs]
	}')
if [ -n "$out" ]; then
	printf '%s\n' "$out"
	status=1
fi
[ "$status" -eq 0 ] || echo "check-layers: include rules of lib/README broken (see above)"
exit "$status"
