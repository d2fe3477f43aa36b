//go:build !linux

package index

type tableMappings string

func tableMappingsOf(string) tableMappings { return "" }

func (tableMappings) release() {}
