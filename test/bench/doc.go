// Package bench holds walrus's measurement harnesses. They run only with
// WALRUS_BENCH=1 (make bench), on the real WAL corpus made by
// test/testdata/mkwal.sh, and print tables of ratios against a peer measured
// in the same run. They assert nothing about speed: this machine is shared
// and noisy, so numbers are reported, not enforced.
package bench
