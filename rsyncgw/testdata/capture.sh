#!/bin/sh
# capture.sh: record real rsync daemon exchanges for the fuzz seeds and the
# protocol tests in this directory.
#
# It starts a stock `rsync --daemon --no-detach` on a loopback port with a
# throwaway rsyncd.conf, puts the logging proxy (capture/proxy.go, one
# connection per run) in front of it and runs the stock client once per
# scenario. Each scenario NAME leaves transcripts/NAME.c2s (bytes client ->
# server) and transcripts/NAME.s2c (server -> client).
#
# Captured with: rsync 3.5.0 (Debian, client and daemon), go 1.26, on
# loopback. Run from anywhere: sh rsyncgw/testdata/capture.sh [NAME...]
# (with names, only those scenarios are captured again).
set -eu
only="$*"
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'kill $dpid 2>/dev/null || true; rm -rf "$work"' EXIT
out="$here/transcripts"
mkdir -p "$out" "$work/store" "$work/fetch" "$work/src"
go build -o "$work/proxy" "$here/capture/proxy.go"

# Small files keep the seeds small; contents are deterministic.
head -c 1000 /dev/zero | tr '\0' 'a' > "$work/fetch/000000010000000000000001"
head -c 700 /dev/zero | tr '\0' 'b' > "$work/src/000000010000000000000002"
touch -d @1700000000 "$work/fetch/000000010000000000000001" "$work/src/000000010000000000000002"
# Two files for the compressed scenarios (one session, so zstd's stream
# spans both): text that compresses, then bytes that do not.
mkdir -p "$work/zfetch" "$work/zsrc"
i=0; while [ $i -lt 3000 ]; do echo "line $i of a compressible file, lsn 0/$((i * 40))"; i=$((i+1)); done > "$work/zfetch/a.txt"
LC_ALL=C awk 'BEGIN { x = 12345; for (i = 0; i < 40000; i++) { x = (x * 1103515245 + 12345) % 2147483648; printf "%c", int(x / 8388608) } }' > "$work/zfetch/b.bin"
cp "$work/zfetch/a.txt" "$work/zfetch/b.bin" "$work/zsrc/"
touch -d @1700000000 "$work/zfetch/a.txt" "$work/zfetch/b.bin" "$work/zsrc/a.txt" "$work/zsrc/b.bin"
printf 'alice:secret\n' > "$work/secrets"; chmod 600 "$work/secrets"
printf 'secret\n' > "$work/pw"; chmod 600 "$work/pw"
port=$(( 20000 + $$ % 20000 ))
cat > "$work/rsyncd.conf" <<CONF
use chroot = no
uid = 0
gid = 0
pid file = $work/pid
[wal_store]
	path = $work/store
	read only = false
	comment = push here
[wal_fetch]
	path = $work/fetch
	read only = true
	comment = pull from here
[secure]
	path = $work/fetch
	auth users = alice
	secrets file = $work/secrets
[compress]
	path = $work/fetch
	refuse options = compress
[zfetch]
	path = $work/zfetch
[zstore]
	path = $work/store
	read only = false
CONF
rsync --daemon --no-detach --address=127.0.0.1 --port=$port --config="$work/rsyncd.conf" &
dpid=$!
i=0; until rsync rsync://127.0.0.1:$port/ >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.1; done

# run NAME rsync-args... ; the literal HOST in an argument becomes the proxy.
run() {
	name=$1; shift
	if [ -n "$only" ] && ! echo " $only " | grep -q " $name "; then return; fi
	"$work/proxy" -target 127.0.0.1:$port -out "$out/$name" > "$work/addr" &
	ppid=$!
	i=0; until [ -s "$work/addr" ]; do i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.05; done
	addr=$(cat "$work/addr"); : > "$work/addr"
	args=""; for a in "$@"; do args="$args '$(echo "$a" | sed "s|HOST|$addr|")'"; done
	eval "RSYNC_PASSWORD=secret rsync $args" > /dev/null 2>&1 && rc=0 || rc=$?
	wait $ppid
	echo "$name: exit $rc"
}
run list rsync://HOST/
run listing rsync://HOST/wal_fetch/
run pull -a rsync://HOST/wal_fetch/000000010000000000000001 "$work/dst1"
run pull30 --protocol=30 -a rsync://HOST/wal_fetch/000000010000000000000001 "$work/dst2"
run pullmissing -a rsync://HOST/wal_fetch/00000001000000000000FFFF "$work/dst3"
run push -aq "$work/src/000000010000000000000002" rsync://HOST/wal_store/000000010000000000000002
run push30 --protocol=30 -aq "$work/src/000000010000000000000002" rsync://HOST/wal_store/000000010000000000000003
run auth -a rsync://alice@HOST/secure/000000010000000000000001 "$work/dst4"
run compress -az rsync://HOST/compress/000000010000000000000001 "$work/dst5"
run unknown rsync://HOST/nosuch/
# Without incremental recursion: the sequences our server speaks.
run pullnoinc --no-inc-recursive -a rsync://HOST/wal_fetch/000000010000000000000001 "$work/dst6"
run pushnoinc --no-inc-recursive -aq "$work/src/000000010000000000000002" rsync://HOST/wal_store/000000010000000000000004
run listingnoinc --no-inc-recursive rsync://HOST/wal_fetch/
# Compressed token streams, stock daemon to stock client and back: pull
# and push of the two files above with each compression (-rt and no
# incremental recursion keep the streams simple to walk in tests).
for z in zlib zlibx zstd lz4; do
	run "pull$z" --no-inc-recursive -rt --zc=$z rsync://HOST/zfetch/ "$work/zdst-$z/"
	run "push$z" --no-inc-recursive -rt --zc=$z "$work/zsrc/" "rsync://HOST/zstore/z$z/"
done
run pullz --no-inc-recursive -rtz rsync://HOST/zfetch/ "$work/zdst-neg/"
