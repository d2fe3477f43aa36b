// Package backend is the storage contract for walrus's packs (issue 14):
// one interface, Backend, whose every method states its semantics, two
// implementations (Local, a directory; S3, an S3-compatible bucket through
// minio-go v7), the cross-cutting decorators stacked in one place (Stack:
// retries, timeouts, a concurrency limit, metrics) and authenticated
// encryption at rest (Encrypted). backendtest holds the conformance suite
// every implementation and decorator passes, and starts a real versitygw
// for the S3 runs. Nothing in store uses it yet.
//
// # Durability
//
// Local.Put: temporary file in the object's directory → write → fsync →
// close → rename (PutIfAbsent: link, which never replaces) → fsync the
// directory. A name only ever points at a synced file, and Put returns
// after the name itself is durable. S3.Put is one PUT (never multipart up
// to 5 GiB): S3 makes an object visible only once complete, and durable by
// the provider's terms when it answers 200.
//
// # Encrypted object format, version 1
//
// Encrypted seals objects with XChaCha20-Poly1305 (golang.org/x/crypto)
// under a 256-bit key from a key file (LoadKeyFile), which never goes to
// the backend. Whole-object sealing would force a reader to fetch the whole
// object for any range, so an object is a header followed by independently
// sealed chunks of 64 KiB of plaintext:
//
//	header (32 bytes): "WALRUSE1" | version 1 (1) | log2 chunk size 16 (1) |
//	                   zero (2) | key id (4) | object id (16, random)
//	chunk i:           XChaCha20-Poly1305 seal of plaintext[i*64Ki : (i+1)*64Ki]
//	                   nonce = object id | uint64 big-endian i        (24 bytes)
//	                   additional data = header | uint64 i | last (1 byte: 1
//	                   for the final chunk) | object name
//	                   = ciphertext (same length) + 16-byte tag
//
// An empty object has one empty chunk, so the stored size is 32 + P +
// 16·max(1, ⌈P/64Ki⌉) for P plaintext bytes; the mapping is invertible, and
// a stored size no object can have is rejected at once. A range read
// fetches only the chunks it touches (plus, on the first read of an object,
// a Stat and the header; both are cached) and opens all of them before
// copying a byte out. Because the header is in every chunk's additional
// data and the name, index and last flag too, a chunk that was modified,
// moved to another index (reordered), taken from another object (swapped;
// another object id), or an object renamed (another name) fails to open;
// truncation at a chunk boundary is caught at the new final chunk (it was
// not sealed as last), extension at the old one (it no longer is).
// Failures are ErrTampered; no byte of a failed range is returned. The
// precise guarantee: every successful read returns exactly the bytes
// written at that position of that name; a read of a range that lies
// wholly inside an undamaged prefix of a truncated or extended object
// still succeeds (those bytes are authentic), and Stat, which does not
// read the object, reports the size the stored length implies. The key id
// (SHA-256 of a label and the key, 4 bytes) only turns "wrong key" into a
// clear message; it is authenticated like the rest of the header. Object
// ids are 128 random bits, so nonces (id, index) do not repeat before
// about 2^64 objects; 24-byte nonces are why XChaCha20 rather than
// AES-GCM's 12. Names and plaintext sizes are not hidden.
//
// # versitygw (the S3 server the tests run), v1.8.0 posix backend
//
//   - If-None-Match: * is atomic: the conditional check and the publishing
//     link/rename run under a process-local striped mutex and, across
//     gateway processes sharing one directory, an flock on
//     .vgwlocks/<bucket>/<shard>. Measured (TestS3TwoGatewaysRace, 200
//     rounds of 8 writers over two gateways on one directory): 0 rounds
//     with two winners; with --disable-object-lock-file, 2 to 4 rounds in
//     200 had two (three runs), as its help warns.
//   - It never fsyncs object data or directories (no Sync/Fsync in
//     backend/posix): an acknowledged PUT can be lost if its host crashes.
//     Fine for tests; a production bucket must be a store that is durable
//     on acknowledgement (AWS S3, MinIO, Ceph RGW, ...).
//   - As on AWS: a conditional conflict is 412 PreconditionFailed; a GET
//     range that starts inside the object and ends past it returns the
//     bytes there are (206, Content-Range "bytes 90-99/100"), one starting
//     at or past the end is 416 InvalidRange (S3.ReadAt turns both into
//     ErrShort); HEAD and GET of a missing key are 404 NoSuchKey; DELETE
//     of a missing key succeeds; ListObjectsV2 honours max-keys (paging is
//     tested at 7 and at 2 keys a page), returns keys in byte order across
//     its directories ("a-b", "a.b" before "a/b") and honours start-after
//     together with continuation tokens (ListAfter's conformance test).
//   - A multipart upload with If-None-Match: * (as minio-go v7.4.1 sends
//     it) replaced an existing key without complaint: conditional create
//     is only enforced on a single PUT. S3 therefore never uses multipart
//     (objects up to 5 GiB, one PUT).
//   - It keeps private files whose names start with "." (.sgwtmp temporary
//     links, .vgwlocks); Backend names never start a component with ".".
//
// # Request-cost model
//
// Assumptions (say so when quoting): one 16 MiB WAL segment per second,
// 30-day month = 2 592 000 segments; zstd stores pgbench-like WAL at about
// 4:1, so c ≈ 4 MiB per segment (full-page-write-heavy WAL compresses
// less, more packs); AWS S3 Standard us-east-1 list prices: PUT/LIST
// $0.005 per 1000, GET/HEAD $0.0004 per 1000, DELETE free, storage
// $0.023 per GB-month, transfer out about $0.09 per GB.
//
//	write: 1 PUT per sealed pack (single PUT ≤ 5 GiB) + 1 per index
//	       snapshot; per segment 1/k PUTs with k = pack size / c
//	read:  1 ranged GET per restored segment (its blocks are contiguous in
//	       one pack; adjacent ranges coalesce, prefetch can fetch several
//	       segments per GET) + on first touch of an encrypted pack 1 HEAD
//	       and 1 GET of its header (cached)
//	list:  rebuild from the bucket lists packs: 1 LIST per 1000 objects
//
//	pack size       segments/pack  PUTs/month   PUT $/month  LISTs to rebuild a month
//	one per segment       1        2 592 000      12.96          2 592
//	16 MiB                4          648 000       3.24            648
//	64 MiB               16          162 000       0.81            162
//	256 MiB (default)    64           40 500       0.20             41
//	1 GiB               256           10 125       0.05             11
//
// The month's WAL itself is about 9.9 TiB stored: $233 per month kept. So
// at 256 MiB packs requests cost 0.1% of storage, and one object per
// segment (what per-segment archivers store, before their own requests for
// checks and listings) 5.6%. Restores are bounded by transfer, not
// requests: replaying one day (86 400 segments) is 86 400 GETs ($0.03)
// but about 337 GiB out ($30). --ack remote, which must put each commit in
// the bucket before acknowledging it, costs one PUT per segment ($12.96 a
// month at this rate) until its fragments are merged into packs.
//
// Recommendation: keep 256 MiB packs (the store's default) for the
// bucket. Going to 1 GiB saves $0.15 a month and makes every failed upload
// resend 4× more and GC rewrite coarser; going below 64 MiB buys nothing a
// roll-by-age policy does not give. Roll policy: seal and upload a pack at
// 256 MiB or when its oldest unsealed byte is 60 s old, whichever comes
// first; at one segment per second both trigger at about the same time,
// and on a quiet server the age bound keeps the local-ack upload backlog
// at one minute of WAL (each such pack is then ~1 segment: at one segment
// per 5 min that is 8 640 PUTs, $0.04, a month). With the Stack default
// MinRate (1 MiB/s) a 256 MiB PUT may take 30 s + 256 s before it counts as
// hung.
package backend
