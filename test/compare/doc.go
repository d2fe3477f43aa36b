// Package compare is the comparison harness behind `make compare`: walrus
// against the classic archive host (a stock `rsync --daemon` over a plain
// directory) and against pgBackRest, on one corpus of real PostgreSQL 15 WAL
// made in the same run. It runs only with WALRUS_BENCH=1, so `make test`
// never runs it, and it reports numbers rather than asserting them (this
// machine is shared and noisy); the report marks each target met or missed.
//
// The corpus is made here, not taken from test/testdata/walcache: pgBackRest's
// archive-push and archive-get compare every segment's system identifier with
// the stanza, and the stanza is created from pg_control in pg1-path, so they
// need the data directory of the cluster that wrote the WAL. mkwal.sh removes
// its cluster; this harness keeps its own until the end of the run.
//
//	WALRUS_BENCH=1 go test -count=1 -v -timeout 30m ./test/compare/
//
// Environment: WALRUS_COMPARE_SEGMENTS (corpus size, default 60),
// WALRUS_COMPARE_SECONDS (sustained run, default 60), WALRUS_COMPARE_OUT
// (the Markdown report, default bench-results/compare.md at the repository
// root), WALRUS_BIN (walrus binary; built from the repository otherwise),
// WALRUS_COMPARE_STOP_AFTER=restore (only the push and restore table: a
// quicker run while working on those paths).
package compare
