// Command coldread is built by TestPureGoReadsColdTier with CGO_ENABLED=0:
// it opens the store in os.Args[1] and prints "cgo=false", then
// "PATH SHA256" for every file, the cold bytes, and the data problems
// verify finds.
package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"

	"github.com/walrus-archive/walrus/store"
)

func main() {
	s, err := store.Open(store.Config{Dir: os.Args[1], MustExist: true})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	defer s.Close()
	fmt.Println("cold-writer", store.CanWriteCold)
	err = s.Walk(context.Background(), "*", func(fi store.FileInfo) error {
		r, err := s.Open(fi.Path)
		if err != nil {
			return err
		}
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(r, 0, fi.Size)); err != nil {
			return fmt.Errorf("%s: %w", fi.Path, err)
		}
		fmt.Printf("file %s %x\n", fi.Path, h.Sum(nil))
		return nil
	})
	if err != nil {
		fmt.Println("read:", err)
		os.Exit(1)
	}
	st, _ := s.Status()
	fmt.Println("cold", st.ColdBytes)
	rep, err := s.Verify(context.Background(), "*", nil)
	if err != nil {
		fmt.Println("verify:", err)
		os.Exit(1)
	}
	fmt.Println("problems", len(rep.DataProblems()))
}
