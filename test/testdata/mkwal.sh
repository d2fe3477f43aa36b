#!/usr/bin/env bash
# mkwal.sh - generate a directory of real PostgreSQL WAL archive files for tests.
#
# Usage: mkwal.sh [--segsize MiB] [--pgbin DIR] OUTDIR [NSEGMENTS]
#
# Runs a throwaway PostgreSQL cluster (default /usr/lib/postgresql/15/bin) as
# the "postgres" OS user on a private unix socket directory and a free loopback
# port, with archive_mode=on, and lets it archive into OUTDIR:
#   - NSEGMENTS (default 60) or more full segments of pgbench WAL on timeline 1;
#   - at least one switched, mostly zero-filled segment (pg_switch_wal() on an
#     idle cluster right after a small write);
#   - a SEGMENT.OFFSET.backup file (pg_basebackup with archiving on);
#   - 00000002.history, the old timeline's last SEGMENT.partial and the first
#     segments of timeline 2, by promoting a streaming standby (second cluster).
# OUTDIR/.complete is written last; if it exists the script exits 0 at once.
# Files are archived into a private staging directory and moved to OUTDIR at
# the end, so OUTDIR never holds a half-made set.
set -euo pipefail

segsize=16
pgbin=/usr/lib/postgresql/15/bin
while [[ $# -gt 0 ]]; do
	case "$1" in
	--segsize) segsize="$2"; shift 2 ;;
	--segsize=*) segsize="${1#*=}"; shift ;;
	--pgbin) pgbin="$2"; shift 2 ;;
	--pgbin=*) pgbin="${1#*=}"; shift ;;
	-h|--help) sed -n '2,17p' "$0"; exit 0 ;;
	--) shift; break ;;
	-*) echo "mkwal.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
if [[ $# -lt 1 || $# -gt 2 ]]; then
	echo "usage: mkwal.sh [--segsize MiB] [--pgbin DIR] OUTDIR [NSEGMENTS]" >&2
	exit 2
fi
outdir="$1"
nseg="${2:-60}"
[[ "$nseg" =~ ^[0-9]+$ ]] || { echo "mkwal.sh: NSEGMENTS must be a number, got $nseg" >&2; exit 2; }
[[ "$segsize" =~ ^[0-9]+$ ]] || { echo "mkwal.sh: --segsize must be a number of MiB, got $segsize" >&2; exit 2; }

if [[ -e "$outdir/.complete" ]]; then
	exit 0
fi
[[ -x "$pgbin/initdb" ]] || { echo "mkwal.sh: no PostgreSQL binaries in $pgbin" >&2; exit 1; }

start=$(date +%s)
log() { echo "mkwal.sh: [$(($(date +%s) - start))s] $*" >&2; }

# as_pg runs a command as the postgres OS user (directly if we are not root).
as_pg() {
	if [[ $(id -u) -eq 0 ]]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# free_port prints a loopback TCP port nobody listens on.
free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 30000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	echo "mkwal.sh: no free port found" >&2
	return 1
}

work=$(mktemp -d /tmp/mkwal.XXXXXX)
chmod 755 "$work"
sock="$work/sock"
arch="$work/archive"
mkdir -p "$sock" "$arch"
if [[ $(id -u) -eq 0 ]]; then
	chown -R postgres: "$work"
fi

cleanup() {
	local rc=$?
	for d in "$work/standby" "$work/primary"; do
		if [[ -f "$d/postmaster.pid" ]]; then
			as_pg "$pgbin/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1 || true
		fi
	done
	if [[ $rc -ne 0 ]]; then
		log "failed (exit $rc); server logs:"
		tail -n 20 "$work"/*.log >&2 2>/dev/null || true
	fi
	rm -rf "$work"
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

p1=$(free_port)
p2=$(free_port)
while [[ "$p2" == "$p1" ]]; do p2=$(free_port); done

# archive_command: refuse to replace a different file, accept an identical one.
archive_cmd="if [ -f $arch/%f ]; then cmp -s %p $arch/%f; else cp %p $arch/%f.tmp && mv $arch/%f.tmp $arch/%f; fi"

conf() { # conf DATADIR PORT
	cat >>"$1/postgresql.conf" <<-EOF
		listen_addresses = '127.0.0.1'
		port = $2
		unix_socket_directories = '$sock'
		archive_mode = on
		archive_command = '$archive_cmd'
		wal_level = replica
		wal_keep_size = '1GB'
		max_wal_size = '1GB'
		fsync = off
		synchronous_commit = off
		full_page_writes = on
		shared_buffers = '128MB'
		logging_collector = off
	EOF
}

psql1() { as_pg "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$p1" -d postgres "$@"; }
psql2() { as_pg "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$p2" -d postgres "$@"; }
nsegs() { find "$arch" -maxdepth 1 -regextype posix-extended -regex '.*/[0-9A-F]{24}' | wc -l; }

# wait_file GLOB: wait up to 60 s for an archived file.
wait_file() {
	for _ in $(seq 1 600); do
		compgen -G "$arch/$1" >/dev/null && return 0
		sleep 0.1
	done
	echo "mkwal.sh: timed out waiting for $1 to be archived" >&2
	return 1
}

log "initdb (wal segment size $segsize MiB) in $work"
as_pg "$pgbin/initdb" -D "$work/primary" -A trust -U postgres --no-sync --wal-segsize="$segsize" >/dev/null
conf "$work/primary" "$p1"
as_pg "$pgbin/pg_ctl" -D "$work/primary" -l "$work/primary.log" -w start >/dev/null

# A base backup with streamed WAL becomes the standby; with archiving on it also
# makes the primary archive a .backup history file.
log "base backup for the standby"
as_pg "$pgbin/pg_basebackup" -h "$sock" -p "$p1" -U postgres -D "$work/standby" -X stream -R -c fast -l mkwal
sed -i "s/^port = .*/port = $p2/" "$work/standby/postgresql.conf"
as_pg "$pgbin/pg_ctl" -D "$work/standby" -l "$work/standby.log" -w start >/dev/null

# pgbench: an initial load of about half the target (COPY, index builds and
# vacuum write about 16 MiB of WAL per scale unit, fast), then TPC-B-like
# transactions mixed with range updates until enough segments are archived.
# TPC-B-like alone writes only about 1 MiB of WAL a second on a small machine.
scale=$((nseg * segsize / 16 / 2))
[[ $scale -ge 1 ]] || scale=1
log "pgbench -i -s $scale"
as_pg "$pgbin/pgbench" -i -q -s "$scale" -h "$sock" -p "$p1" -U postgres postgres >/dev/null 2>&1
cat >"$work/range.sql" <<'SQL'
\set aid random(1, 100000 * :scale - 1000)
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid BETWEEN :aid AND :aid + 999;
SQL
chmod 644 "$work/range.sql"
log "$(nsegs) segments archived"
while [[ $(nsegs) -lt $nseg ]]; do
	as_pg "$pgbin/pgbench" -n -c 4 -j 2 -T 5 -b tpcb-like@4 -f "$work/range.sql@1" \
		-h "$sock" -p "$p1" -U postgres postgres >/dev/null 2>&1
	log "$(nsegs) segments archived"
done

# A switched, mostly zero segment: close the current segment, make one small
# write on the idle cluster, and switch again.
log "switched segment"
psql1 -c "create table mkwal_switch(x int)" >/dev/null
psql1 -c "select pg_switch_wal()" >/dev/null
psql1 -c "insert into mkwal_switch values (1)" >/dev/null
sw=$(psql1 -At -c "select pg_walfile_name(pg_switch_wal())")
wait_file "$sw"

# Promote the standby after a clean primary shutdown (which sends it all WAL):
# it archives 00000002.history, the old timeline's last segment as .partial,
# and, after one more write and switch, the first segment of timeline 2.
log "promote the standby"
as_pg "$pgbin/pg_ctl" -D "$work/primary" -m fast -w stop >/dev/null
as_pg "$pgbin/pg_ctl" -D "$work/standby" -w promote >/dev/null
psql2 -c "create table mkwal_tli2(x int); insert into mkwal_tli2 values (2); checkpoint" >/dev/null
tli2=$(psql2 -At -c "select pg_walfile_name(pg_switch_wal())")
wait_file 00000002.history
wait_file '*.partial'
wait_file "$tli2"
as_pg "$pgbin/pg_ctl" -D "$work/standby" -m fast -w stop >/dev/null

mkdir -p "$outdir"
rm -f "$arch"/*.tmp
mv -f "$arch"/* "$outdir"/
{
	echo "postgres=$("$pgbin/postgres" --version)"
	echo "segsize_mib=$segsize"
	echo "switched=$sw"
	echo "generated=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "seconds=$(($(date +%s) - start))"
} >"$outdir/.complete.tmp"
mv "$outdir/.complete.tmp" "$outdir/.complete"
log "done: $(ls "$outdir" | wc -l) files in $outdir"
