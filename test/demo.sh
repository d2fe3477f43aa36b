#!/usr/bin/env bash
# demo.sh - walrus end to end in about a minute (make demo).
#
# Usage: test/demo.sh            (run from anywhere; needs root, /dev/fuse,
#                                 rsync and PostgreSQL 15)
#
# Builds nothing itself: make demo builds bin/walrus first ($WALRUS_BIN
# overrides). Then, all under one throwaway directory:
#   1. walrus serve --home (store, FUSE mount, rsync gateway on a free port);
#   2. a PostgreSQL 15 cluster archiving through the gateway:
#        archive_command = 'rsync -aq %p rsync://127.0.0.1:PORT/wal_store/demo/%f'
#   3. a base backup, a short pgbench run, a restore point, more pgbench;
#   4. a point-in-time restore of the backup through the mount:
#        restore_command = 'cp MOUNT/demo/%f %p', recovery_target_name = 'demo'
#      and a check that it holds exactly the data of the restore point;
#   5. pg_stat_archiver and walrus status (segments, bytes in, stored, ratio).
# Everything is stopped and removed on exit, also on failure or Ctrl-C.
set -euo pipefail

cd "$(dirname "$0")/.."
pgbin=${WALRUS_PGBIN:-/usr/lib/postgresql/15/bin}
walrus=${WALRUS_BIN:-$PWD/bin/walrus}
start=$(date +%s)
say() { printf '\n== [%ss] %s\n' "$(($(date +%s) - start))" "$*"; }
die() { echo "demo.sh: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (FUSE mount, PostgreSQL as the postgres user)"
[[ -e /dev/fuse ]] || die "/dev/fuse is missing"
command -v rsync >/dev/null || die "rsync is missing"
[[ -x $pgbin/initdb ]] || die "no PostgreSQL in $pgbin (apt-get install postgresql-15)"
[[ -x $walrus ]] || die "no walrus binary at $walrus (make build)"

as_pg() { runuser -u postgres -- "$@"; }

work=$(mktemp -d /tmp/walrus-demo.XXXXXX)
chmod 755 "$work"
home=$work/home
pgw=$work/pg # postgres-owned: data directories, sockets, logs
mkdir -p "$home" "$pgw/sock"
chmod 755 "$home"
chown -R postgres: "$pgw"
walrus_pid=

cleanup() {
	local rc=$?
	for d in "$pgw/restored" "$pgw/primary"; do
		[[ -f $d/postmaster.pid ]] && as_pg "$pgbin/pg_ctl" -D "$d" -m immediate -w stop >/dev/null 2>&1
	done
	if [[ -n $walrus_pid ]]; then
		kill -TERM "$walrus_pid" 2>/dev/null && wait "$walrus_pid" 2>/dev/null
	fi
	if grep -q " $home/pg_archived " /proc/mounts; then
		umount -l "$home/pg_archived" || true
	fi
	if [[ $rc -ne 0 ]]; then
		echo "demo.sh: failed (exit $rc); logs:" >&2
		tail -n 15 "$work/walrus.log" "$pgw"/*.log >&2 2>/dev/null || true
	fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for SECONDS DESCRIPTION COMMAND...: poll a condition with a deadline.
wait_for() {
	local secs=$1 what=$2
	shift 2
	local deadline=$(($(date +%s) + secs))
	until "$@"; do
		(($(date +%s) < deadline)) || die "timed out waiting for $what"
		sleep 0.1
	done
}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null ||
	echo $((20000 + RANDOM % 30000)))

say "walrus serve --home $home --rsync-listen 127.0.0.1:$port"
"$walrus" serve --home "$home" --rsync-listen "127.0.0.1:$port" --allow-other 2>"$work/walrus.log" &
walrus_pid=$!
wait_for 30 "walrus ready" grep -q '^walrus ready:' "$work/walrus.log"
grep '^walrus ready:' "$work/walrus.log"
mnt=$home/pg_archived
data=$home/data

psql() { as_pg "$pgbin/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$pgw/sock" -p "$1" -U postgres -d postgres -c "$2"; }
conf() { # conf DATADIR PORT LINES...
	local d=$1 p=$2
	shift 2
	{
		echo "listen_addresses = ''"
		echo "port = $p"
		echo "unix_socket_directories = '$pgw/sock'"
		echo "fsync = off"
		echo "wal_keep_size = '1GB'"
		echo "wal_retrieve_retry_interval = '100ms'"
		printf '%s\n' "$@"
	} >>"$d/postgresql.conf"
}

say "PostgreSQL 15 primary archiving through the rsync gateway"
as_pg "$pgbin/initdb" -D "$pgw/primary" -A trust -U postgres --no-sync --no-instructions >/dev/null
conf "$pgw/primary" 5432 "archive_mode = on" \
	"archive_command = 'rsync -aq %p rsync://127.0.0.1:$port/wal_store/demo/%f'"
echo "archive_command = 'rsync -aq %p rsync://127.0.0.1:$port/wal_store/demo/%f'"
as_pg "$pgbin/pg_ctl" -D "$pgw/primary" -l "$pgw/primary.log" -w start >/dev/null
as_pg "$pgbin/pgbench" -i -q -s 5 -h "$pgw/sock" -p 5432 -U postgres postgres 2>&1 | tail -n 1

say "base backup (WAL from the archive: -X none)"
as_pg "$pgbin/pg_basebackup" -h "$pgw/sock" -p 5432 -U postgres -D "$pgw/backup" -X none -c fast --no-sync

say "pgbench for 10 s, a restore point, 5 s more"
as_pg "$pgbin/pgbench" -n -c 4 -j 2 -T 10 -h "$pgw/sock" -p 5432 -U postgres postgres 2>&1 | grep -E '^(tps|number of transactions actually)'
state="select (select count(*) from pgbench_history) || ' transactions, balance ' || (select sum(abalance) from pgbench_accounts)"
want=$(psql 5432 "$state")
psql 5432 "select pg_create_restore_point('demo')" >/dev/null
as_pg "$pgbin/pgbench" -n -c 4 -j 2 -T 5 -h "$pgw/sock" -p 5432 -U postgres postgres 2>&1 | grep -E '^tps'
last=$(psql 5432 "select pg_walfile_name(pg_switch_wal())")
wait_for 60 "$last to be archived" test -e "$pgw/primary/pg_wal/archive_status/$last.done"
echo "pg_stat_archiver (archived|failed|last):"
psql 5432 "select archived_count, failed_count, last_archived_wal from pg_stat_archiver"

say "point-in-time restore through the mount to restore point 'demo'"
as_pg cp -a "$pgw/backup" "$pgw/restored"
conf "$pgw/restored" 5433 "archive_mode = off" \
	"restore_command = 'cp $mnt/demo/%f %p'" \
	"recovery_target_name = 'demo'" "recovery_target_action = 'promote'"
echo "restore_command = 'cp $mnt/demo/%f %p'"
as_pg touch "$pgw/restored/recovery.signal"
as_pg "$pgbin/pg_ctl" -D "$pgw/restored" -l "$pgw/restored.log" -w start >/dev/null
in_production() { [[ $(psql 5433 "select pg_is_in_recovery()" 2>/dev/null) == f ]]; }
wait_for 60 "the restore to finish" in_production
got=$(psql 5433 "$state")
now=$(psql 5432 "$state")
echo "at the restore point: $want"
echo "restored:             $got"
echo "primary now:          $now"
[[ $got == "$want" ]] || die "the restored cluster does not match the restore point"
echo "OK: the restored cluster holds exactly the data of the restore point"

say "walrus status"
"$walrus" --data "$data" status
segments=$("$walrus" --data "$data" ls demo | grep -cE '^[0-9A-F]{24}$' || true)
"$walrus" --data "$data" status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
segs = int(sys.argv[1])
ratio = s["logical_bytes"] / s["stored_bytes"] if s["stored_bytes"] else 0
print("segments %d, bytes in %d, bytes stored %d, ratio %.1fx" % (segs, s["logical_bytes"], s["stored_bytes"], ratio))
' "$segments" 2>/dev/null || echo "segments $segments"
"$walrus" --data "$data" verify >/dev/null && echo "walrus verify: every block and file checks out"

say "done; cleaning up"
