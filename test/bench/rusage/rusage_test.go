package rusage

import (
	"os"
	"os/exec"
	"testing"
)

func TestMain(m *testing.M) {
	ChildMain()
	os.Exit(m.Run())
}

// burn is a command that spends some CPU and exits.
var burn = []string{"sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done"}

// Proc counts a child's CPU once it has been reaped, and Exited reports
// the same child's own usage.
func TestProcCountsReapedChildren(t *testing.T) {
	before, err := Proc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(burn[0], burn[1:]...)
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	child := Exited(cmd.ProcessState)
	after, err := Proc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if child.CPU <= 0 {
		t.Fatalf("the child used no CPU: %+v", child)
	}
	// /proc counts in 10 ms ticks; allow one tick per counter.
	if got, slack := after.Sub(before).CPU, 4*child.CPU/10; got+slack < child.CPU {
		t.Errorf("Proc grew by %v across a reaped child that used %v", got, child.CPU)
	}
	if Children(os.Getpid()) {
		t.Error("Children reports a child after it was reaped")
	}
}

// Measure reports a command's own peak RSS, not this process's: a child
// started directly by a process that has touched 256 MiB reports at least
// that (vfork + exec keeps the high-water mark).
func TestMeasureReportsOwnPeakRSS(t *testing.T) {
	big := make([]byte, 256<<20)
	for i := range big {
		big[i] = 1
	}
	r, err := Measure(t.TempDir(), "true")
	if err != nil {
		t.Fatal(err)
	}
	if r.Exit != 0 || r.MaxRSS <= 0 {
		t.Fatalf("true: exit %d, max RSS %d", r.Exit, r.MaxRSS)
	}
	if r.MaxRSS > 64<<20 {
		t.Errorf("true reported a peak RSS of %d MiB: the launcher's or this test's, not its own", r.MaxRSS>>20)
	}
	direct := exec.Command("true")
	if err := direct.Run(); err != nil {
		t.Fatal(err)
	}
	t.Logf("peak RSS of true: %d KiB through Measure, %d KiB started directly by a process holding 256 MiB",
		r.MaxRSS>>10, Exited(direct.ProcessState).MaxRSS>>10)
	big[len(big)-1] = 2 // keep big alive until here
	r, err = Measure(t.TempDir(), "sh", "-c", "exit 3")
	if err != nil || r.Exit != 3 {
		t.Fatalf("exit status through Measure: %d, %v", r.Exit, err)
	}
}
