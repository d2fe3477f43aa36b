package main

import (
	"errors"
	"fmt"

	"github.com/walrus-archive/walrus/internal/control"
	"github.com/walrus-archive/walrus/store"
)

// initCmd creates a store explicitly. Besides serve it is the only command
// that does: the others fail on a directory that holds none (exitNoStore).
type initCmd struct{}

// Run is idempotent, like git init: on a store it says so and succeeds.
func (c *initCmd) Run(g *globals) error {
	if _, err := control.Dial(g.Data); err == nil {
		fmt.Fprintf(g.stdout, "%s already holds a walrus store (a walrus serve is running on it)\n", g.Data)
		return nil
	}
	s, created, err := openOrCreate(store.Config{Dir: g.Data, Logger: g.log})
	if err != nil {
		return err
	}
	if err := s.Close(); err != nil {
		return err
	}
	if created {
		fmt.Fprintf(g.stdout, "created an empty walrus store in %s\n", g.Data)
	} else {
		fmt.Fprintf(g.stdout, "%s already holds a walrus store\n", g.Data)
	}
	return nil
}

// openOrCreate opens the store in cfg.Dir, creating an empty one when the
// directory holds none, and says whether it did.
func openOrCreate(cfg store.Config) (s *store.Store, created bool, err error) {
	cfg.MustExist = true
	s, err = store.Open(cfg)
	if errors.Is(err, store.ErrNoStore) {
		cfg.MustExist = false
		s, err = store.Open(cfg)
		created = true
	}
	if err != nil {
		return nil, false, explainOpenError(cfg.Dir, err)
	}
	return s, created, nil
}
