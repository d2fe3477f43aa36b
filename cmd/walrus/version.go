package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is set by `make build` (-ldflags "-X main.version=..." from git
// describe). Without it, --version falls back to what the go tool recorded.
var version string

// versionString is what `walrus --version` prints.
func versionString() string {
	v := version
	if v == "" {
		v = buildInfoVersion()
	}
	return fmt.Sprintf("walrus %s (%s %s/%s)", v, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// buildInfoVersion is the module version ("v1.2.0" after go install
// ...@v1.2.0, "(devel)" in a checkout) and the VCS revision, when recorded.
func buildInfoVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev != "" {
		v += " " + rev[:min(12, len(rev))]
		if modified == "true" {
			v += "-dirty"
		}
	}
	return v
}
