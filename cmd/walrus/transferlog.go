package main

import (
	"log/slog"

	"github.com/walrus-archive/walrus/store"
)

// transferLog writes one line per transfer (store.Observer): interface,
// peer, directory, name, bytes, stored bytes, duration and outcome; a
// refusal at WARN with its reason and the store's message.
type transferLog struct{ log *slog.Logger }

func (l transferLog) Committed(ev store.CommitEvent) {
	attrs := []any{"interface", ev.Origin.Interface, "peer", ev.Origin.Peer, "dir", ev.Dir, "name", ev.Name,
		"bytes", ev.Size, "stored", ev.Stored, "duration_ms", float64(ev.Duration.Microseconds()) / 1000}
	switch {
	case ev.Err != nil:
		l.log.Warn("push refused", append(attrs, "outcome", "refused", "reason", store.RefusalReason(ev.Err), "err", ev.Err.Error())...)
	case ev.Existed:
		l.log.Info("push", append(attrs, "outcome", "identical")...)
	default:
		l.log.Info("push", append(attrs, "outcome", "archived")...)
	}
}

func (l transferLog) Restored(ev store.ReadEvent) {
	l.log.Info("restore", "interface", ev.Origin.Interface, "peer", ev.Origin.Peer, "dir", ev.Dir, "name", ev.Name,
		"bytes", ev.Bytes, "duration_ms", float64(ev.Duration.Microseconds())/1000, "outcome", "read")
}

// observers sends every event to each of its members.
type observers []store.Observer

func (o observers) Committed(ev store.CommitEvent) {
	for _, x := range o {
		x.Committed(ev)
	}
}

func (o observers) Restored(ev store.ReadEvent) {
	for _, x := range o {
		x.Restored(ev)
	}
}
