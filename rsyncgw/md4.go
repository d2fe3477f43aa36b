package rsyncgw

import (
	"encoding/binary"
	"hash"
	"math/bits"
)

// md4 is RFC 1320 MD4, which rsync still negotiates for daemon auth and
// checksums with old peers. It is not used for anything security relevant
// beyond what the peer chose.
type md4 struct {
	s   [4]uint32
	x   [64]byte
	nx  int
	len uint64
}

func newMD4() hash.Hash {
	d := &md4{}
	d.Reset()
	return d
}

func (d *md4) Reset() {
	d.s = [4]uint32{0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476}
	d.nx, d.len = 0, 0
}

func (d *md4) Size() int      { return 16 }
func (d *md4) BlockSize() int { return 64 }

func (d *md4) Write(p []byte) (int, error) {
	n := len(p)
	d.len += uint64(n)
	if d.nx > 0 {
		k := copy(d.x[d.nx:], p)
		d.nx += k
		p = p[k:]
		if d.nx == 64 {
			d.block(d.x[:])
			d.nx = 0
		}
	}
	for len(p) >= 64 {
		d.block(p[:64])
		p = p[64:]
	}
	d.nx += copy(d.x[:], p)
	return n, nil
}

func (d *md4) Sum(in []byte) []byte {
	c := *d
	var pad [72]byte
	pad[0] = 0x80
	n := 56 - int(c.len%64)
	if n <= 0 {
		n += 64
	}
	binary.LittleEndian.PutUint64(pad[n:], c.len<<3)
	c.Write(pad[:n+8])
	for _, v := range c.s {
		in = binary.LittleEndian.AppendUint32(in, v)
	}
	return in
}

var md4Shifts = [3][4]int{{3, 7, 11, 19}, {3, 5, 9, 13}, {3, 9, 11, 15}}
var md4Order2 = [16]int{0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15}
var md4Order3 = [16]int{0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15}

func (d *md4) block(p []byte) {
	var x [16]uint32
	for i := range x {
		x[i] = binary.LittleEndian.Uint32(p[4*i:])
	}
	a, b, c, e := d.s[0], d.s[1], d.s[2], d.s[3]
	for i := 0; i < 16; i++ {
		f := (b & c) | (^b & e)
		a, b, c, e = e, bits.RotateLeft32(a+f+x[i], md4Shifts[0][i%4]), b, c
	}
	for i := 0; i < 16; i++ {
		f := (b & c) | (b & e) | (c & e)
		a, b, c, e = e, bits.RotateLeft32(a+f+x[md4Order2[i]]+0x5a827999, md4Shifts[1][i%4]), b, c
	}
	for i := 0; i < 16; i++ {
		f := b ^ c ^ e
		a, b, c, e = e, bits.RotateLeft32(a+f+x[md4Order3[i]]+0x6ed9eba1, md4Shifts[2][i%4]), b, c
	}
	d.s[0] += a
	d.s[1] += b
	d.s[2] += c
	d.s[3] += e
}
