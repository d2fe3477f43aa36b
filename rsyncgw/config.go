package rsyncgw

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// DefaultPort is the rsync daemon port (rsync: rsync.h RSYNC_PORT).
const DefaultPort = 873

// Config is a parsed rsyncd.conf.
type Config struct {
	File     string // where it was read from, for messages
	Port     int    // `port`, 0 when not set
	Address  string // `address`
	MotdFile string // `motd file`
	// Log is where messages go before a module is chosen: the `log
	// file`, `syslog facility` and `syslog tag` given among the globals.
	Log LogTarget
	// ReverseLookup is the global `reverse lookup`, for messages before
	// a module is chosen.
	ReverseLookup bool
	Modules       []*Module
	// Warnings name parameters and directives that were ignored, with
	// file and line.
	Warnings []string
}

// Module is one [section] of rsyncd.conf.
type Module struct {
	Name        string
	Comment     string
	Path        string
	ReadOnly    bool
	WriteOnly   bool
	List        bool
	HostsAllow  []string
	HostsDeny   []string
	AuthUsers   []string // raw entries: user, @group, wildcards, optional :ro/:rw/:deny
	SecretsFile string
	StrictModes bool
	UID, GID    string
	// MaxConnections bounds concurrent sessions of this module; 0 means no
	// limit, a negative value refuses every connection (as rsync does).
	MaxConnections int
	Timeout        time.Duration
	RefuseOptions  []string
	// DontCompress are the wildcards of files a pull sends without
	// compressing (`dont compress`; default DefaultDontCompress).
	DontCompress []string
	// Log is where the module's messages go; TransferLogging adds one
	// line per file in LogFormat (`transfer logging`, `log format`).
	Log             LogTarget
	TransferLogging bool
	LogFormat       string
	// ReverseLookup: look up the client's host name (`reverse lookup`,
	// default yes); without it rsync says UNDETERMINED.
	ReverseLookup bool

	Line     int // line of the [section] header
	PathLine int // line of the `path` parameter
}

// ParseConfig reads the rsyncd.conf at path. Unknown parameters do not
// fail it: they are listed in Config.Warnings, which NewServer logs.
func ParseConfig(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	defer f.Close()
	return ReadConfig(f, path)
}

// ReadConfig parses rsyncd.conf text; name is used in messages.
func ReadConfig(r io.Reader, name string) (*Config, error) {
	p := &confParser{cfg: &Config{File: name}, defaults: defaultModule()}
	lines, err := logicalLines(r, name)
	if err != nil {
		return nil, err
	}
	for _, l := range lines {
		if err := p.line(l.no, l.text); err != nil {
			return nil, err
		}
	}
	if err := p.finish(); err != nil {
		return nil, err
	}
	return p.cfg, nil
}

func defaultModule() Module {
	return Module{ReadOnly: true, List: true, StrictModes: true, DontCompress: DefaultDontCompress,
		Log: LogTarget{SyslogFacility: "daemon", SyslogTag: "rsyncd"}, LogFormat: DefaultLogFormat, ReverseLookup: true}
}

// DefaultLogFormat is rsync's default `log format`.
const DefaultLogFormat = "%o %h [%a] %m (%u) %f %l"

// LogTarget is where daemon messages go: File when set, else syslog
// with the facility and tag (rsync: log.c log_init).
type LogTarget struct {
	File           string
	SyslogFacility string
	SyslogTag      string
}

type confLine struct {
	no   int
	text string
}

// logicalLines joins continuation lines (a trailing backslash) and drops
// comments and blank lines (rsync: params.c).
func logicalLines(r io.Reader, name string) ([]confLine, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	var out []confLine
	var cur strings.Builder
	start, no := 0, 0
	for sc.Scan() {
		no++
		text := strings.TrimRight(sc.Text(), " \t\r")
		if strings.IndexByte(text, 0) >= 0 {
			return nil, configError(name, no, "NUL byte in line")
		}
		if cur.Len() == 0 {
			start = no
			if t := strings.TrimLeft(text, " \t"); t == "" || t[0] == '#' || t[0] == ';' {
				continue
			}
		}
		if cont, ok := strings.CutSuffix(text, "\\"); ok {
			cur.WriteString(cont)
			continue
		}
		cur.WriteString(text)
		if t := strings.TrimSpace(cur.String()); t != "" {
			out = append(out, confLine{start, t})
		}
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		return nil, configError(name, no, "%v", err)
	}
	if t := strings.TrimSpace(cur.String()); t != "" {
		out = append(out, confLine{start, t})
	}
	return out, nil
}

type confParser struct {
	cfg      *Config
	defaults Module  // module parameters given among the globals
	mod      *Module // current section; nil among the globals
	seen     map[string]int
}

func (p *confParser) line(no int, text string) error {
	if text[0] == '[' {
		return p.section(no, text)
	}
	if text[0] == '&' {
		p.warn(no, "directive %q not supported, ignored", text)
		return nil
	}
	key, value, ok := strings.Cut(text, "=")
	if !ok {
		return configError(p.cfg.File, no, "expected `name = value` or `[module]`, got %q", text)
	}
	return p.param(no, normalizeKey(key), strings.TrimSpace(value))
}

// normalizeKey folds case and drops spaces: "Read Only" = "readonly".
func normalizeKey(k string) string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '_' {
			return -1
		}
		return r
	}, strings.ToLower(k))
}

func (p *confParser) section(no int, text string) error {
	end := strings.IndexByte(text, ']')
	if end < 0 {
		return configError(p.cfg.File, no, "section header %q lacks `]`", text)
	}
	name := strings.TrimSpace(text[1:end])
	switch {
	case name == "":
		return configError(p.cfg.File, no, "empty module name")
	case strings.EqualFold(name, "global"):
		p.mod = nil
		return nil
	case strings.ContainsAny(name, "/]") || name[0] == '#':
		return configError(p.cfg.File, no, "invalid module name %q", name)
	}
	if p.seen == nil {
		p.seen = map[string]int{}
	}
	if prev, dup := p.seen[name]; dup {
		return configError(p.cfg.File, no, "module [%s] already defined at line %d", name, prev)
	}
	p.seen[name] = no
	m := p.defaults
	m.Name, m.Line = name, no
	p.mod = &m
	p.cfg.Modules = append(p.cfg.Modules, p.mod)
	return nil
}

func (p *confParser) param(no int, key, value string) error {
	if p.mod == nil {
		if ok, err := p.global(no, key, value); ok || err != nil {
			return err
		}
	}
	m := p.mod
	if m == nil {
		m = &p.defaults
	}
	ok, err := p.moduleParam(m, no, key, value)
	if err != nil {
		return configError(p.cfg.File, no, "%s: %v", key, err)
	}
	if !ok {
		p.unknown(no, key)
	}
	return nil
}

func (p *confParser) global(no int, key, value string) (bool, error) {
	switch key {
	case "port":
		n, err := strconv.Atoi(value)
		if err != nil || n <= 0 || n > 65535 {
			return true, configError(p.cfg.File, no, "port: %q is not a TCP port", value)
		}
		p.cfg.Port = n
	case "address":
		p.cfg.Address = value
	case "motdfile":
		p.cfg.MotdFile = value
	default:
		return false, nil
	}
	return true, nil
}

func (p *confParser) moduleParam(m *Module, no int, key, value string) (bool, error) {
	var err error
	switch key {
	case "path":
		m.Path, m.PathLine = value, no
		if value == "" {
			err = fmt.Errorf("empty path")
		}
	case "comment":
		m.Comment = value
	case "readonly":
		m.ReadOnly, err = parseBool(value)
	case "writeonly":
		m.WriteOnly, err = parseBool(value)
	case "list":
		m.List, err = parseBool(value)
	case "strictmodes":
		m.StrictModes, err = parseBool(value)
	case "hostsallow":
		m.HostsAllow, err = parseHostList(value)
	case "hostsdeny":
		m.HostsDeny, err = parseHostList(value)
	case "authusers":
		m.AuthUsers, err = parseAuthUsers(value)
	case "secretsfile":
		m.SecretsFile = value
	case "uid":
		m.UID = value
	case "gid":
		m.GID = value
	case "maxconnections":
		m.MaxConnections, err = strconv.Atoi(value)
	case "timeout":
		var n int
		n, err = strconv.Atoi(value)
		if err == nil && n < 0 {
			err = fmt.Errorf("negative timeout %d", n)
		}
		m.Timeout = time.Duration(n) * time.Second
	case "refuseoptions":
		m.RefuseOptions = strings.Fields(value)
	case "dontcompress":
		m.DontCompress = strings.Fields(value)
	case "logfile":
		m.Log.File = value
	case "syslogfacility":
		if !validFacility(value) {
			err = fmt.Errorf("unknown syslog facility %q", value)
		}
		m.Log.SyslogFacility = strings.ToLower(value)
	case "syslogtag":
		m.Log.SyslogTag = value
	case "transferlogging":
		m.TransferLogging, err = parseBool(value)
	case "logformat":
		m.LogFormat = value
	case "reverselookup":
		m.ReverseLookup, err = parseBool(value)
	default:
		return p.ignored(no, key), nil
	}
	return true, err
}

// harmless are stock parameters with no meaning for a store-backed daemon.
var harmless = map[string]bool{
	"usechroot": true, "pidfile": true, "lockfile": true, "numericids": true,
	"forwardlookup": true, "socketoptions": true,
	"maxverbosity": true, "ignoreerrors": true, "ignorenonreadable": true, "fakesuper": true,
	"mungesymlinks": true, "charset": true, "opennoatime": true, "daemonchroot": true,
	"daemonuid": true, "daemongid": true, "listenbacklog": true, "prexferexec": true,
	"postxferexec": true, "earlyexec": true, "nameconverter": true, "tempdir": true,
	"proxyprotocol": true,
}

func (p *confParser) ignored(no int, key string) bool {
	return harmless[key] // accepted without effect
}

func (p *confParser) unknown(no int, key string) {
	p.warn(no, "unknown or unsupported parameter %q ignored", key)
}

func (p *confParser) warn(no int, format string, args ...any) {
	p.cfg.Warnings = append(p.cfg.Warnings, fmt.Sprintf("%s:%d: ", p.cfg.File, no)+fmt.Sprintf(format, args...))
}

func (p *confParser) finish() error {
	p.cfg.Log, p.cfg.ReverseLookup = p.defaults.Log, p.defaults.ReverseLookup
	for _, m := range p.cfg.Modules {
		if m.Path == "" {
			return configError(p.cfg.File, m.Line, "module [%s] has no path", m.Name)
		}
		if m.ReadOnly && m.WriteOnly {
			return configError(p.cfg.File, m.Line, "module [%s] is both read only and write only", m.Name)
		}
		for _, h := range append(append([]string(nil), m.HostsAllow...), m.HostsDeny...) {
			if _, err := parseHostPattern(h); err != nil {
				return configError(p.cfg.File, m.Line, "module [%s]: %v", m.Name, err)
			}
		}
	}
	return nil
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "yes", "true", "1", "on":
		return true, nil
	case "no", "false", "0", "off":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (use yes or no)", v)
}

// splitList splits on spaces, commas and tabs (rsync: access.c).
func splitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' })
}

func parseHostList(v string) ([]string, error) {
	list := splitList(v)
	for _, h := range list {
		if _, err := parseHostPattern(h); err != nil {
			return nil, err
		}
	}
	return list, nil
}

func parseAuthUsers(v string) ([]string, error) {
	list := splitList(v)
	for _, u := range list {
		if _, _, err := parseAuthUser(u); err != nil {
			return nil, err
		}
	}
	return list, nil
}
