// Package soak holds fault-injection runs against a real walrus serve:
// SIGKILL cycles under a mixed load and damage to the data directory. They
// print the figures docs/reliability.md reports. make test runs a few
// cycles; make soak runs many (WALRUS_SOAK_CYCLES).
package soak
