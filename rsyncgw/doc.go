// Package rsyncgw is walrus's built-in rsync daemon: the server side of the
// rsync daemon protocol (versions 30 and 31), so that stock rsync clients
// push to and pull from modules of an ordinary rsyncd.conf while the bytes
// live in the segment store.
//
// # What a session does
//
// A connection runs in its own goroutine (Server.Serve). The text phase
// (greeting, MOTD, module line, access checks, auth, arguments) is bounded
// by Options.HandshakeTimeout; after it every read and write refreshes a
// deadline of the module's `timeout`, or the client's --timeout when
// shorter (Options.IdleTimeout when neither is set), so an idle or
// stalled client times out while a slow but moving one does not. Access is decided before the store is touched, in rsync's order:
// hosts allow/deny, max connections, auth users and secrets.
//
// A pull (`--sender`) or listing builds the file list from the store,
// sends it, and answers each request with the whole file as literal
// tokens followed by the negotiated whole-file checksum (sender.go). A
// push reads the client's file list, decides per file what to ask for
// (skip.go), and a generator goroutine requests those files whole (an
// all-zero sum header) while the session goroutine receives the data
// (receiver.go). A dry run (-n) makes the same decisions and moves no
// data.
//
// # Compression
//
// -z and its variants are negotiated as stock rsync does (compress.go)
// and the file data travels in rsync's compressed token streams
// (token*.go): zlib and zlibx as one raw deflate stream per file with
// the sync-flush trailer cut, zstd as one stream for the whole session,
// lz4 as one block per chunk. The gateway never offers or sends block
// matches, so zlib and zlibx differ only in name.
//
// # Durability and immutability (push)
//
// Received bytes go straight into store.Upload (no temporary names ever
// become entries). After the file's checksum arrives and matches, the
// upload is committed; Commit returning nil means fsynced and indexed.
// The end-of-transfer NDX_DONE exchange, and so the client's exit status,
// comes only after every file of the session was committed or refused.
// A file the store refuses (different content under an existing name,
// invalid WAL, another cluster's segment, checksum mismatch) is reported
// with MSG_ERROR_XFER naming the archive name and the reason: the client
// prints it and exits 23 at the end. An identical re-push commits as a
// no-op and the client exits 0. A push exits 0 only when every regular
// file it names is archived with the pushed content: the skip options
// (--existing, --ignore-existing, -u, --size-only, --max-size,
// --min-size) never let a file go unarchived silently (skip.go).
//
// # Daemon log
//
// Besides the structured log, a session writes the lines a stock rsyncd
// writes, to `log file` or syslog (daemonlog.go, syslog.go). Neither may
// hold up a transfer: a log file is appended with one write per line, a
// syslog that does not take a line within syslogWriteTimeout drops it.
//
// # Refusals
//
// The server's argument list is parsed as rsync: options.c
// server_options writes it (args.go). Options whose wire format or
// semantics we do not implement (-H, -A, -X, -U, -N, -R, --append,
// --files-from, --remove-source-files, ...; on a push also --delete*,
// --backup-dir, --compare-dest, --link-dest, --copy-dest) and those in
// `refuse options` are refused with stock rsync's text and exit code;
// protocols below 30 are refused with @ERROR. No path leads to a hang:
// every read has a deadline and every length read from the wire is
// bounded (wire.go) before anything is allocated.
//
// # Concurrency
//
// Server.mu guards the per-module connection counts, the table of open
// connections and the session numbers; Server.logMu guards the syslog
// connections and the name cache has its own mutex, both shared by
// sessions. A session is owned by one goroutine; during a push the
// generator goroutine shares only the muxWriter, whose mutex makes each
// write one unit. The session goroutine waits for the generator before
// returning (closing the connection first if it failed, which unblocks
// it). A panic in a session is recovered, logged, and ends only that
// connection. Serve returns after its listener is closed and every session
// goroutine has ended: sessions get Options.ShutdownGrace to finish, then
// their connections are closed.
package rsyncgw
