// Package backend is the storage contract for walrus's packs.
package backend
