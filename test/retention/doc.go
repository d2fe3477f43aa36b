// Package retention tests WAL-aware status, verify and retention against a
// real PostgreSQL 15 cluster: base backups with archiving, a promotion to a
// new timeline, retention keeping one and two backups, and a deleted
// segment showing up as a gap. It needs /usr/lib/postgresql/15/bin and
// root (to run the server as the postgres user) or to be run as postgres;
// it skips with a reason otherwise, and fails instead under CI=true.
package retention
