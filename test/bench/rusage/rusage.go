// Package rusage is the one way walrus's benchmark harnesses measure the
// resources a process used: CPU time (user+sys), minor page faults and
// peak resident set. It reads them three ways, for three kinds of process:
//
//   - a server that keeps running (walrus serve, a stock rsync daemon):
//     Proc reads /proc/PID/stat, whose counters include the children the
//     server has reaped (a stock rsync daemon forks one per connection), so
//     the difference of two readings is what the server did in between;
//   - this process (an in-process server in a package's benchmark): Self;
//   - a command that has exited: Exited reads its wait4 rusage.
//
// Peak RSS needs care: Go starts children with vfork, and Linux's
// ru_maxrss of a vforked child that execs is at least its parent's peak
// RSS at the time (exec takes the old, shared mm's high-water mark: kernel
// exec_mmap, setmax_mm_hiwater_rss), so a command started by a test that
// has used a lot of memory reports the test's peak, not its own. Measure
// starts the command from a fresh copy of the test binary (small when it
// starts the command) instead; the test binary's TestMain must call
// ChildMain first.
package rusage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Usage is what a process used.
type Usage struct {
	CPU    time.Duration // user + sys
	MinFlt int64         // minor page faults
	MaxRSS int64         // peak resident set in bytes (Exited and Measure only)
}

// Sub is u minus an earlier reading v (MaxRSS is u's).
func (u Usage) Sub(v Usage) Usage {
	return Usage{CPU: u.CPU - v.CPU, MinFlt: u.MinFlt - v.MinFlt, MaxRSS: u.MaxRSS}
}

// Add sums two usages (MaxRSS is the larger).
func (u Usage) Add(v Usage) Usage {
	return Usage{CPU: u.CPU + v.CPU, MinFlt: u.MinFlt + v.MinFlt, MaxRSS: max(u.MaxRSS, v.MaxRSS)}
}

// userHZ is the unit of the times in /proc/PID/stat (USER_HZ, 100 on
// every Linux architecture Go supports).
const userHZ = 100

// Proc reads /proc/PID/stat: the process's own user+sys time and minor
// faults plus those of its reaped children. Its resolution is 10 ms, so
// divide a difference over many operations rather than reading one.
func Proc(pid int) (Usage, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Usage{}, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return Usage{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 15 {
		return Usage{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	n := func(field int) int64 { v, _ := strconv.ParseInt(f[field-3], 10, 64); return v }
	ticks := n(14) + n(15) + n(16) + n(17) // utime stime cutime cstime
	return Usage{CPU: time.Duration(ticks) * time.Second / userHZ, MinFlt: n(10) + n(11)}, nil
}

// Children reports whether process pid has live children (a stock rsync
// daemon's connection handlers): their time reaches Proc only once they are
// reaped, so wait until there are none before a final reading.
func Children(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	return err == nil && len(bytes.TrimSpace(b)) > 0
}

// Self is this process's usage (getrusage RUSAGE_SELF; children are not
// counted).
func Self() Usage {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return fromRusage(&ru)
}

// Exited is the usage of a command that has exited, its waited-for
// children included (MaxRSS: see the package comment).
func Exited(ps *os.ProcessState) Usage {
	if ps == nil {
		return Usage{}
	}
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return Usage{}
	}
	return fromRusage(ru)
}

func fromRusage(ru *syscall.Rusage) Usage {
	return Usage{CPU: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), MinFlt: ru.Minflt, MaxRSS: ru.Maxrss << 10}
}

// Result is a command run by Measure.
type Result struct {
	Stdout []byte
	Exit   int
	Wall   time.Duration
	Usage
}

const childEnv = "WALRUS_RUSAGE_CHILD"

// ChildMain is the launcher side of Measure: when this process was started
// by Measure it runs the command, reports and exits; otherwise it returns
// at once. Call it first thing in TestMain.
func ChildMain() {
	if argv := os.Getenv(childEnv); argv != "" {
		os.Exit(child(argv, os.Getenv(childEnv+"_OUT")))
	}
}

type report struct {
	Wall  time.Duration
	Usage Usage
	Error string
}

// Measure runs argv from a fresh copy of this (test) binary and returns its
// output, exit status, wall time and usage with a peak RSS of its own.
// dir is a scratch directory for the report.
func Measure(dir string, argv ...string) (Result, error) {
	self, err := os.Executable()
	if err != nil {
		return Result{}, err
	}
	enc, _ := json.Marshal(argv)
	out, err := os.CreateTemp(dir, "rusage")
	if err != nil {
		return Result{}, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(enc), childEnv+"_OUT="+out.Name())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	r := Result{Stdout: stdout}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		r.Exit = exit.ExitCode()
	} else if err != nil {
		return r, fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, stderr.Bytes())
	}
	var rep report
	if b, err := io.ReadAll(out); err != nil || json.Unmarshal(b, &rep) != nil || rep.Error != "" {
		return r, fmt.Errorf("%s: no usage reported (%v %s)\n%s", strings.Join(argv, " "), err, rep.Error, stderr.Bytes())
	}
	r.Wall, r.Usage = rep.Wall, rep.Usage
	return r, nil
}

// child runs the command argv (JSON) with this process's standard streams,
// writes its wall time and usage to out and returns its exit status.
func child(argv, out string) int {
	var args []string
	var rep report
	code := 1
	if err := json.Unmarshal([]byte(argv), &args); err != nil || len(args) == 0 {
		rep.Error = fmt.Sprintf("bad %s: %v", childEnv, err)
	} else {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		// Not the launcher's variables: a command that is this test
		// binary again must run as itself, not as another launcher.
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, childEnv) {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		start := time.Now()
		err := cmd.Run()
		rep.Wall = time.Since(start)
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			code = exit.ExitCode()
		case err != nil:
			rep.Error = err.Error()
		default:
			code = 0
		}
		rep.Usage = Exited(cmd.ProcessState)
	}
	b, _ := json.Marshal(rep)
	if err := os.WriteFile(out, b, 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return code
}
