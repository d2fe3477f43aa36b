// Package e2e proves walrus with real PostgreSQL 15, the real rsync client
// and a real FUSE mount: the built `walrus serve` binary is started on a
// throwaway home, and throwaway clusters archive into it and recover from it
// through the interfaces a stock set-up uses (archive_command and
// restore_command with cp and rsync). Every scenario asserts on
// PostgreSQL's own view (pg_stat_archiver, archive_status, query results,
// replay LSNs), not only on files.
//
// The tests need root, /dev/fuse, rsync and PostgreSQL 15 in
// /usr/lib/postgresql/15/bin (or $WALRUS_PGBIN); they skip without them,
// except under CI=true. They build walrus themselves unless $WALRUS_BIN
// names a binary.
//
// Helpers live in two small packages: pgcluster (clusters run as the
// postgres user) and walrusproc (the walrus binary as a black box).
package e2e
