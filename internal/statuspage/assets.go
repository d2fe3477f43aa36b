package statuspage

import "io/fs"

// subFS serves assets/static as /static/.
func subFS() fs.FS {
	sub, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}
