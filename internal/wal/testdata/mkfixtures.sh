#!/usr/bin/env bash
# mkfixtures.sh - copy small fixtures for package wal's tests out of a WAL
# directory made by test/testdata/mkwal.sh (default: test/testdata/walcache).
# See README in this directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src="${1:-$here/../../../test/testdata/walcache}"
[[ -f "$src/.complete" ]] || { echo "mkfixtures.sh: $src/.complete missing; run test/testdata/mkwal.sh $src" >&2; exit 1; }
cd "$src"
switched=$(sed -n 's/^switched=//p' .complete)
partial=$(ls | grep -E '^[0-9A-F]{24}\.partial$' | head -n 1)
tli2=$(ls | grep -E '^00000002[0-9A-F]{16}$' | head -n 1)
backup=$(ls | grep -E '^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$' | head -n 1)

rm -f "$here"/*.bin "$here"/*.history "$here"/*.backup "$here/VERSION"
cp 00000002.history "$backup" "$here/"

# First and second pages of a full pgbench segment: the tenth segment of
# timeline 1 whose last page is not zero.
full=$(for f in $(ls | grep -E '^00000001[0-9A-F]{16}$'); do
	if ! cmp -s <(tail -c 8192 "$f") <(head -c 8192 /dev/zero); then echo "$f"; fi
done | sed -n 10p)
[[ -n "$full" ]] || { echo "mkfixtures.sh: fewer than 10 full segments in $src" >&2; exit 1; }
dd if="$full" of="$here/first-page-$full.bin" bs=8192 count=1 status=none
dd if="$full" of="$here/second-page-$full.bin" bs=8192 skip=1 count=1 status=none

# First pages of the base backup's segment and of a segment switched on an
# idle cluster (both switched: pg_backup_stop switches too), of the .partial,
# and of timeline 2's first segment (whose first page carries timeline 1).
# In each the rest of the file is zero, so tests rebuild the whole file by
# zero padding; check that here.
for f in "${backup%%.*}" "$switched" "$partial" "$tli2"; do
	dd if="$f" of="$here/first-page-$f.bin" bs=8192 count=1 status=none
	size=$(stat -c %s "$f")
	if ! cmp -s <(tail -c +8193 "$f") <(head -c $((size - 8192)) /dev/zero); then
		echo "mkfixtures.sh: $f has nonzero pages after the first; pick another" >&2
		exit 1
	fi
done

sed -n 's/^postgres=//p' .complete >"$here/VERSION"
chmod 644 "$here"/*.bin "$here"/*.history "$here"/*.backup "$here/VERSION"
ls -l "$here"
