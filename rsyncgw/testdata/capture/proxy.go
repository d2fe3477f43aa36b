//go:build ignore

// Command proxy is the tiny logging TCP proxy used by capture.sh: it accepts
// one connection on -listen, relays it to -target and writes the bytes of
// each direction to OUT.c2s (client to server) and OUT.s2c (server to client).
package main

import (
	"flag"
	"io"
	"log"
	"net"
	"os"
	"sync"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to accept one connection on")
	target := flag.String("target", "", "rsync daemon address")
	out := flag.String("out", "", "output prefix")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	os.Stdout.WriteString(ln.Addr().String() + "\n")
	c, err := ln.Accept()
	if err != nil {
		log.Fatal(err)
	}
	s, err := net.Dial("tcp", *target)
	if err != nil {
		log.Fatal(err)
	}
	var wg sync.WaitGroup
	relay := func(dst, src net.Conn, name string) {
		defer wg.Done()
		f, err := os.Create(*out + name)
		if err != nil {
			log.Fatal(err)
		}
		defer f.Close()
		io.Copy(io.MultiWriter(dst, f), src)
		dst.(*net.TCPConn).CloseWrite()
	}
	wg.Add(2)
	go relay(s, c, ".c2s")
	go relay(c, s, ".s2c")
	wg.Wait()
}
