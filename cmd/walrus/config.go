package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/alecthomas/kong"

	"github.com/walrus-archive/walrus/rsyncgw"
)

// The configuration file (--config FILE, WALRUS_CONFIG) is TOML with one
// key per flag: the flag's name with "_" for "-" (data, log_level, mount,
// rsyncd_conf, retain_window, ...). Precedence: command line, then the
// file, then the environment (WALRUS_*: kong reads variables as defaults),
// then the built-in defaults. Unknown keys and values of the wrong type are
// errors that name the key.

// configPath returns the --config value in args (or WALRUS_CONFIG): kong
// needs the file before it parses the command line.
func configPath(args []string) string {
	for i, a := range args {
		switch {
		case a == "--":
			return os.Getenv("WALRUS_CONFIG")
		case a == "--config" && i+1 < len(args):
			return args[i+1]
		case strings.HasPrefix(a, "--config="):
			return strings.TrimPrefix(a, "--config=")
		}
	}
	return os.Getenv("WALRUS_CONFIG")
}

// configResolver resolves flags from a TOML file's keys.
type configResolver struct {
	path   string
	values map[string]any
}

func loadConfig(path string) (*configResolver, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	values := map[string]any{}
	if _, err := toml.NewDecoder(bytes.NewReader(b)).Decode(&values); err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return nil, fmt.Errorf("config %s: line %d: %s", path, perr.Position.Line, perr.Message)
		}
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return &configResolver{path: path, values: values}, nil
}

func configKey(flag string) string { return strings.ReplaceAll(flag, "-", "_") }

// Validate refuses keys that name no flag (a typo would be ignored).
func (r *configResolver) Validate(app *kong.Application) error {
	known := map[string]bool{}
	var walk func(n *kong.Node)
	walk = func(n *kong.Node) {
		for _, f := range n.Flags {
			known[configKey(f.Name)] = true
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	walk(app.Node)
	var bad []string
	for k := range r.values {
		if !known[k] {
			bad = append(bad, k)
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("config %s: unknown key %s (keys are flag names with _ for -, e.g. rsyncd_conf; see walrus serve --help)", r.path, strings.Join(bad, ", "))
	}
	return nil
}

func (r *configResolver) Resolve(_ *kong.Context, _ *kong.Path, flag *kong.Flag) (any, error) {
	v, ok := r.values[configKey(flag.Name)]
	if !ok {
		return nil, nil
	}
	switch x := v.(type) {
	case int64, float64, bool:
		return fmt.Sprint(x), nil // kong parses strings for every flag type
	case string:
		return x, nil
	}
	return nil, fmt.Errorf("config %s: %s: want a string, number or boolean, got %T", r.path, configKey(flag.Name), v)
}

// printConfig writes the effective value of every flag of the command
// being run (and the global ones) as a configuration file.
func printConfig(w io.Writer, kctx *kong.Context) {
	fmt.Fprintf(w, "# effective configuration of walrus %s (command line > --config file > environment > defaults)\n", kctx.Command())
	seen := map[string]bool{}
	for _, flags := range kctx.Flags() {
		f := flags
		if f.Name == "help" || f.Name == "version" || f.Name == "config" || f.Name == "check-config" || seen[f.Name] {
			continue
		}
		seen[f.Name] = true
		v := kctx.FlagValue(f)
		switch x := v.(type) {
		case string:
			fmt.Fprintf(w, "%s = %q\n", configKey(f.Name), x)
		default:
			fmt.Fprintf(w, "%s = %v\n", configKey(f.Name), x)
		}
	}
}

// checkConfig validates what serve would start with, without starting or
// writing anything, and prints the effective configuration.
func (c *serveCmd) checkConfig(g *globals, kctx *kong.Context) error {
	c.homePaths(g)
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	if c.Mount == "" && c.RsyncdConf == "" {
		bad("nothing to serve: give mount and/or rsyncd_conf (or home)")
	}
	if _, err := c.maintenanceFor(g.log); err != nil {
		bad("%v", err)
	}
	if c.RsyncdConf != "" {
		if _, err := os.Stat(c.RsyncdConf); err != nil && c.Home != "" && errors.Is(err, os.ErrNotExist) {
			// --home writes the embedded default at the first start.
		} else if cfg, err := rsyncgw.ParseConfig(c.RsyncdConf); err != nil {
			bad("%v", err)
		} else {
			if _, err := rsyncgw.NewServer(cfg, nil, rsyncgw.Options{Listen: c.RsyncListen, ArchiveRoot: c.archiveRoot(), Logger: g.log}); err != nil {
				bad("%v", err)
			}
		}
	}
	for name, addr := range map[string]string{"rsync_listen": c.RsyncListen, "http": c.HTTP} {
		if addr == "" {
			continue
		}
		if _, err := net.ResolveTCPAddr("tcp", addr); err != nil {
			bad("%s %q: %v", name, addr, err)
		}
	}
	if c.Mount != "" {
		if _, err := os.Stat(filepath.Dir(c.Mount)); err != nil {
			bad("mount %s: its parent directory: %v", c.Mount, err)
		}
	}
	if err := c.checkAck(); err != nil {
		bad("%v", err)
	}
	if err := c.bucketFlags.check(); err != nil {
		bad("%v", err)
	} else if c.enabled() {
		if _, _, err := c.bucketFlags.openClaims(nil); err != nil {
			bad("%v", err)
		}
	}
	note := ""
	if _, err := os.Stat(filepath.Join(g.Data, "index")); errors.Is(err, os.ErrNotExist) {
		note = fmt.Sprintf("# note: %s holds no store yet; serve creates one at its first start\n", g.Data)
	}
	printConfig(g.stdout, kctx)
	fmt.Fprint(g.stdout, note)
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(g.stderr, "walrus: config:", p)
		}
		return fmt.Errorf("serve --check-config: %d problems (above); walrus serve would not start", len(problems))
	}
	fmt.Fprintln(g.stdout, "# configuration OK")
	return nil
}
