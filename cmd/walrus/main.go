// Command walrus is the PostgreSQL WAL archive server and its admin CLI.
//
// Exit codes (see exitCode): 0 success, 1 usage or other error, 2 status
// --check found problems, 3 not found, 4 exists with different content,
// 5 invalid WAL or another cluster's WAL, 6 verify found problems, 7 data
// directory in use by another process, 8 not enough free space (nothing
// was stored; the same command succeeds once space is freed), 200 the data
// directory holds no store, 201 its index is missing or damaged while pack
// files remain (walrus repair rebuilds it), 202 get failed for any other
// reason than "not found" (above 125, so that PostgreSQL aborts a recovery
// instead of ending it early: see getExit).
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/alecthomas/kong"
)

// globals are flags every subcommand takes.
type globals struct {
	Data      string `help:"Data directory of the store." default:"./walrus-data" env:"WALRUS_DATA" type:"path"`
	LogLevel  string `help:"Log level: debug, info, warn, error (serve logs one line per transfer at info)." default:"warn" enum:"debug,info,warn,error" env:"WALRUS_LOG_LEVEL"`
	Config    string `help:"Configuration file (TOML, one key per flag: data, mount, rsyncd_conf, ...); flags on the command line override it, and it overrides WALRUS_* variables." type:"path" env:"WALRUS_CONFIG"`
	LogFormat string `help:"Log format: text, json, or auto (text on a terminal, JSON otherwise: journald, files)." default:"auto" enum:"auto,text,json" env:"WALRUS_LOG_FORMAT"`

	stdout io.Writer
	stderr io.Writer
	stdin  io.Reader
	log    *slog.Logger
}

type cli struct {
	globals
	Version kong.VersionFlag `help:"Print the version and exit."`

	Init   initCmd   `cmd:"" help:"Create an empty store in --data. Only init and serve create a store; every other command fails on a directory that holds none (exit 200)."`
	Put    putCmd    `cmd:"" help:"Archive a file (from FILE or standard input) under NAME."`
	Get    getCmd    `cmd:"" help:"Restore NAME to FILE (or standard output)."`
	Ls     lsCmd     `cmd:"" help:"List a directory of the archive."`
	Rm     rmCmd     `cmd:"" help:"Remove a file from the archive."`
	Status statusCmd `cmd:"" help:"Show totals and, per directory and timeline, segment ranges, gaps, backups and the last archived segment; --check for monitoring (exit 2 on problems)."`
	Verify verifyCmd `cmd:"" help:"Re-read and re-hash every file, check WAL headers and continuity; exit 6 if anything is wrong."`
	Retain retainCmd `cmd:"" help:"Remove the WAL no kept base backup or recovery window needs (see --dry-run)."`
	GC     gcCmd     `cmd:"" help:"Reclaim the space of removed files by rewriting sparse packs."`
	Import importCmd `cmd:"" help:"Import an existing archive (a plain WAL directory, or a pgBackRest repository) into DIR; idempotent, resumable by running it again."`
	Export exportCmd `cmd:"" help:"Write the files of DIR back out as plain files into DEST, byte-identical, with their mode and mtime."`
	Repair repairCmd `cmd:"" help:"Rebuild the index from the packs alone (after the index was lost or damaged: exit 201), then verify; walrus serve must not run."`
	Serve  serveCmd  `cmd:"" help:"Serve the archive: FUSE mount, rsync gateway, control socket. Logs 'walrus ready' when live."`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// kongExit carries kong's requested exit (after --help) out of Parse.
type kongExit int

// run parses args and runs one subcommand; it returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (code int) {
	// get's exit codes (getExit): by the parsed command, or, when the
	// arguments do not parse, by a scan of them.
	get := isGet(args)
	defer func() {
		if get {
			code = getExit(code)
		}
	}()
	defer func() {
		if r := recover(); r != nil {
			k, ok := r.(kongExit)
			if !ok {
				panic(r)
			}
			code = int(k)
		}
	}()
	var c cli
	opts := []kong.Option{}
	if path := configPath(args); path != "" {
		r, err := loadConfig(path)
		if err != nil {
			fmt.Fprintln(stderr, "walrus:", err)
			return exitError
		}
		opts = append(opts, kong.Resolvers(r))
	}
	parser, err := kong.New(&c, append(opts,
		kong.Name("walrus"),
		kong.Description("walrus: a deduplicating, compressed, WAL-aware PostgreSQL archive."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(kongExit(code)) }),
		kong.UsageOnError(),
		kong.DefaultEnvars("WALRUS"), // every flag is also WALRUS_<FLAG> (WALRUS_RSYNCD_CONF, ...)
		kong.Vars{"version": versionString()},
		kong.BindTo(ctx, (*context.Context)(nil)))...)
	if err != nil {
		fmt.Fprintln(stderr, "walrus:", err)
		return exitError
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintln(stderr, "walrus:", err)
		return exitError
	}
	get = strings.HasPrefix(kctx.Command(), "get ")
	c.stdout, c.stderr, c.stdin = stdout, stderr, stdin
	c.log = newLogger(stderr, c.LogLevel, c.LogFormat)
	if err := kctx.Run(&c.globals); err != nil {
		fmt.Fprintln(stderr, "walrus:", err)
		return exitCode(err)
	}
	return exitOK
}

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	o := &slog.HandlerOptions{Level: l}
	if format == "json" || format == "auto" && !isTerminal(w) {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}
