package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/alecthomas/kong"
	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sync/errgroup"

	wfs "github.com/walrus-archive/walrus/fs"
	"github.com/walrus-archive/walrus/internal/control"
	"github.com/walrus-archive/walrus/internal/metrics"
	"github.com/walrus-archive/walrus/rsyncgw"
	"github.com/walrus-archive/walrus/store"
)

//go:embed default-rsyncd.conf
var defaultRsyncdConf string

type serveCmd struct {
	Home        string `help:"Run on the embedded default: data in HOME/data, mount at HOME/pg_archived, rsync on 127.0.0.1:8873 with HOME/rsyncd.conf (written if missing). Other flags override." type:"path" env:"WALRUS_HOME"`
	Mount       string `help:"Mount the archive here (FUSE). Empty: no mount." type:"path"`
	UID         int    `name:"uid" help:"Owner of files in the mount (default: the postgres user if it exists, else 0)." default:"-1"`
	GID         int    `name:"gid" help:"Group of files in the mount (default: the postgres group if it exists, else 0)." default:"-1"`
	ReadOnly    bool   `help:"Refuse every change through the mount."`
	AllowOther  bool   `help:"Let users other than the mounting one use the mount (allow_other; the kernel still checks the mode and owner shown, the postgres user by default). --no-allow-other turns it off." default:"true" negatable:""`
	Prefetch    int    `help:"Segments to read ahead after a segment is read (0: off)." default:"8"`
	RsyncdConf  string `name:"rsyncd-conf" help:"Serve the modules of this rsyncd.conf. Empty: no rsync gateway." type:"path"`
	RsyncListen string `name:"rsync-listen" help:"Listen address of the rsync gateway (overrides the config's address and port)."`
	ArchiveRoot string `help:"Directory that module paths in rsyncd.conf are relative to (default: the mount point, else /db/pg_archived)."`
	CacheSize   int64  `help:"Bytes of decompressed blocks kept in memory." default:"268435456"`
	Level       string `help:"zstd level uploads are compressed at (the ingest level; the settler re-encodes them later): fastest, default, better, best." default:"fastest" enum:"fastest,default,better,best"`
	SettleLevel string `help:"zstd level the background settler re-encodes blocks written below it at: fastest, default, better, best, or off." default:"best" enum:"fastest,default,better,best,off"`
	Settle      bool   `help:"Run the background settler (lowest CPU priority, pauses while uploads are in progress). --no-settle turns it off." default:"true" negatable:""`
	ColdTier    string `help:"Re-encode the WAL older than each directory's newest restorable backup with LZMA2 (about 30% smaller than zstd, slower to read): lzma2 or off. Needs a build with cgo (liblzma); every build reads it." default:"lzma2" enum:"lzma2,off"`
	MinFree     int64  `name:"min-free" help:"Refuse uploads (ENOSPC, exit 8) while the data directory's filesystem has less free space than this beyond the index's own reserve, so that rm, retain and gc keep working." default:"67108864"`

	// Periodic retention and GC (maintain.go).
	RetainBackups  int           `help:"Retention: keep the WAL the newest N restorable base backups need (0: not by count)." placeholder:"N"`
	RetainWindow   string        `help:"Retention: keep point-in-time recovery this far back (e.g. 7d; empty: not by time)." placeholder:"DURATION"`
	RetainInterval time.Duration `help:"Apply retention (if a policy is set) and run GC this often (0: never)." default:"1h"`
	GCThreshold    float64       `name:"gc-threshold" help:"GC rewrites packs whose live fraction is below this." default:"0.5"`

	HTTP string `name:"http" aliases:"metrics-listen" help:"Serve the status page (/) and Prometheus metrics (/metrics) on this address, e.g. 127.0.0.1:9187 (--metrics-listen is the same flag). Empty: none."`

	CheckConfig bool `help:"Check the configuration (flags, environment, --config file, rsyncd.conf, retention) and print the effective one, then exit: 0 if it would start."`

	bucketFlags `embed:""`
	Ack         string        `name:"ack" enum:"local,remote" default:"local" help:"When a push succeeds: local (default) once fsynced and indexed here, sealed packs reach --bucket in the background; remote: only once its packs are in the bucket (needs --bucket). See README \"Packs in a bucket\"."`
	AckTimeout  time.Duration `name:"ack-timeout" default:"30s" help:"With --ack remote: a push whose packs are not in the bucket this long after its local commit fails (the bucket is unreachable; it is kept here and succeeds again once the bucket is back). With --bucket-claims-prefix: a push whose name is not claimed this long after its bytes arrived fails, nothing committed."`

	LeaseTTL time.Duration `name:"lease-ttl" default:"30s" help:"With --bucket-claims-prefix: time to live of the group's maintenance lease in the claims prefix. Retention runs only on the front-end holding it (the others follow its removals); another takes it over about this long after its holder stopped."`

	MemoryLimit int64 `help:"Soft memory limit of the Go runtime in bytes (0: the bound computed from the cache size and cores, see README; negative: none; GOMEMLIMIT wins)."`
}

func (c *serveCmd) Run(ctx context.Context, g *globals, kctx *kong.Context) error {
	if c.CheckConfig {
		return c.checkConfig(g, kctx)
	}
	if err := c.applyHome(g); err != nil {
		return err
	}
	if c.Mount == "" && c.RsyncdConf == "" {
		return errors.New("serve: nothing to serve: give --mount and/or --rsyncd-conf (or --home for the default setup)")
	}
	log := g.log
	c.applyMemoryLimit(log)
	maint, err := c.maintenanceFor(log)
	if err != nil {
		return err
	}
	met := metrics.New(versionString())
	maint.metrics = met
	cfg := store.Config{Dir: g.Data, Logger: log, CacheBytes: c.CacheSize, Level: c.Level, MinFree: c.MinFree, Observer: observers{met, transferLog{log}},
		SettleLevel: c.SettleLevel, Settle: c.Settle, ColdTier: c.ColdTier}
	if err := c.bucketFlags.check(); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if err := c.checkAck(); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if c.enabled() {
		if cfg.Remote, cfg.Claims, cfg.OpenPrefix, err = c.bucketFlags.openFront(met); err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		cfg.RemotePrefix = c.BucketPrefix
		if cfg.Claims != nil {
			log.Info("claiming every name in the shared claims prefix before committing it; serving the other front-ends' files too", "claims", cfg.Claims.Location())
		}
		cfg.RollAge = c.BucketRollAge
		cfg.PackCacheBytes = c.BucketCacheSize
		cfg.SnapshotInterval, cfg.SnapshotBytes = c.BucketSnapshotInterval, c.BucketSnapshotBytes
		cfg.AckRemote, cfg.AckTimeout = c.Ack == "remote", c.AckTimeout // AckTimeout also bounds a claim
		cfg.LeaseTTL = c.LeaseTTL
		if cfg.AckRemote {
			log.Info("copying packs to the bucket (remote-ack: a push succeeds once its packs are in the bucket)", "bucket", cfg.Remote.Location(), "ack_timeout", c.AckTimeout)
		} else {
			log.Info("copying sealed packs to the bucket (local-ack: pushes do not wait for it)", "bucket", cfg.Remote.Location(), "roll_age", c.BucketRollAge)
		}
	}
	st, created, err := openOrCreate(cfg)
	if err != nil {
		return err
	}
	if created {
		log.Warn("the data directory held no store: created an empty one (on a first start that is expected; otherwise check --data)", "data", g.Data)
	}
	defer st.Close()
	maint.st = st
	met.Watch(st)
	ctl, err := control.Listen(g.Data)
	if err != nil {
		return err
	}
	rs, rln, err := c.startRsync(st, log, met)
	if err != nil {
		ctl.Close()
		return err
	}
	var hln net.Listener
	if c.HTTP != "" {
		if hln, err = net.Listen("tcp", c.HTTP); err != nil {
			ctl.Close()
			if rln != nil {
				rln.Close()
			}
			return fmt.Errorf("serve: --http %s: %w", c.HTTP, err)
		}
	}
	mnt, err := c.mount(st, log)
	if err != nil {
		ctl.Close()
		if rln != nil {
			rln.Close()
		}
		if hln != nil {
			hln.Close()
		}
		return err
	}
	grp, gctx := errgroup.WithContext(ctx)
	if hln != nil {
		grp.Go(func() error { return serveHTTP(gctx, hln, c.httpHandler(st, maint, met, log)) })
	}
	grp.Go(func() error { return control.NewServer(st, log).Serve(gctx, ctl) })
	grp.Go(func() error { return maint.run(gctx) })
	if rs != nil {
		grp.Go(func() error { return rs.Serve(gctx, rln) })
	}
	if mnt != nil {
		grp.Go(func() error {
			// The mount ends on Unmount below or when someone runs umount.
			unmounted := make(chan struct{})
			go func() { mnt.Wait(); close(unmounted) }()
			select {
			case <-gctx.Done():
				return mnt.Unmount()
			case <-unmounted:
				return errors.New("serve: the mount was unmounted from outside")
			}
		})
	}
	attrs := []any{"data", g.Data, "control", filepath.Join(g.Data, control.SocketName)}
	if mnt != nil {
		attrs = append(attrs, "mount", c.Mount)
	}
	if rln != nil {
		attrs = append(attrs, "rsync", rln.Addr().String())
	}
	if hln != nil {
		attrs = append(attrs, "http", hln.Addr().String())
	}
	log.Info("walrus ready", attrs...)
	fmt.Fprintf(g.stderr, "walrus ready: %s\n", readyLine(attrs))
	// Under systemd (Type=notify, contrib/systemd/walrus.service) units
	// ordered after walrus start only now, with the mount and the gateway
	// live; elsewhere NOTIFY_SOCKET is unset and this does nothing.
	daemon.SdNotify(false, daemon.SdNotifyReady)
	go func() {
		<-gctx.Done()
		daemon.SdNotify(false, daemon.SdNotifyStopping)
	}()
	err = grp.Wait()
	if cerr := st.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

func readyLine(attrs []any) string {
	var b strings.Builder
	for i := 0; i+1 < len(attrs); i += 2 {
		fmt.Fprintf(&b, "%s=%v ", attrs[i], attrs[i+1])
	}
	return strings.TrimSpace(b.String())
}

// applyHome fills in the embedded default set-up under --home.
// archiveRoot is what rsyncd.conf module paths are relative to.
func (c *serveCmd) archiveRoot() string {
	if c.ArchiveRoot != "" {
		return c.ArchiveRoot
	}
	return c.Mount // "": rsyncgw's DefaultArchiveRoot
}

// homePaths sets the paths --home implies (flags given win).
func (c *serveCmd) homePaths(g *globals) {
	if c.Home == "" {
		return
	}
	g.Data = filepath.Join(c.Home, "data")
	if c.Mount == "" {
		c.Mount = filepath.Join(c.Home, "pg_archived")
	}
	if c.RsyncdConf == "" {
		c.RsyncdConf = filepath.Join(c.Home, "rsyncd.conf")
	}
}

func (c *serveCmd) applyHome(g *globals) error {
	if c.Home == "" {
		return nil
	}
	// The home must be traversable by the postgres user, who reaches the
	// mount below it (archive_command = 'cp %p HOME/pg_archived/%f').
	if err := os.MkdirAll(c.Home, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(c.Home, 0o755); err != nil {
		return err
	}
	g.Data = filepath.Join(c.Home, "data")
	if c.Mount == "" {
		c.Mount = filepath.Join(c.Home, "pg_archived")
	}
	if c.RsyncdConf == "" {
		c.RsyncdConf = filepath.Join(c.Home, "rsyncd.conf")
		if _, err := os.Stat(c.RsyncdConf); errors.Is(err, os.ErrNotExist) {
			if err := writeDefaultConf(c.RsyncdConf, c.Mount); err != nil {
				return err
			}
		}
	}
	return os.MkdirAll(g.Data, 0o750)
}

func writeDefaultConf(path, root string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	t := template.Must(template.New("conf").Parse(defaultRsyncdConf))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	logFile := filepath.Join(filepath.Dir(path), "rsyncd.log") // not syslog: a fresh host may have none
	if err := t.Execute(f, struct{ Root, Log string }{root, logFile}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (c *serveCmd) startRsync(st *store.Store, log *slog.Logger, met *metrics.Metrics) (*rsyncgw.Server, net.Listener, error) {
	if c.RsyncdConf == "" {
		return nil, nil, nil
	}
	cfg, err := rsyncgw.ParseConfig(c.RsyncdConf)
	if err != nil {
		return nil, nil, err
	}
	srv, err := rsyncgw.NewServer(cfg, st, rsyncgw.Options{Listen: c.RsyncListen, ArchiveRoot: c.archiveRoot(), Logger: log, Observer: met})
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", srv.ListenAddr())
	if err != nil {
		return nil, nil, fmt.Errorf("serve: rsync gateway: %w (set --rsync-listen or port/address in %s)", err, c.RsyncdConf)
	}
	return srv, ln, nil
}

func (c *serveCmd) mount(st *store.Store, log *slog.Logger) (*wfs.Server, error) {
	if c.Mount == "" {
		return nil, nil
	}
	// A killed server's mount first: on a dead FUSE mount MkdirAll fails
	// with EEXIST (not ENOTCONN) unless the kernel still had the root's
	// attributes cached, the normal state after archive_command's cp.
	if err := wfs.RecoverStaleMount(c.Mount); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.Mount, 0o755); err != nil {
		return nil, fmt.Errorf("serve: create mount point: %w", err)
	}
	uid, gid := ownerIDs(c.UID, c.GID)
	prefetch := c.Prefetch
	if prefetch == 0 {
		prefetch = -1 // fs: negative turns prefetch off, zero means default
	}
	return wfs.Mount(st, wfs.Options{
		Mount: c.Mount, UID: uid, GID: gid, ReadOnly: c.ReadOnly, AllowOther: c.AllowOther,
		Prefetch: prefetch, Logger: log,
	})
}
