// Command gotar writes a tar with Go's archive/tar (what upstream's lifecycle uses) from entry lines on
// stdin: kind, name, linkname, mode (octal), uid, gid, size, tab-separated. File contents are size x 'x'.
// tests/differential/test_tar_headers.py compares its bytes with lifecycle/layers/tar.py's.
package main

import (
	"archive/tar"
	"bufio"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	tw := tar.NewWriter(os.Stdout)
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		mode, _ := strconv.ParseInt(f[3], 8, 64)
		uid, _ := strconv.Atoi(f[4])
		gid, _ := strconv.Atoi(f[5])
		size, _ := strconv.ParseInt(f[6], 10, 64)
		h := &tar.Header{Name: f[1], Linkname: f[2], Mode: mode, Uid: uid, Gid: gid, Size: size,
			ModTime: time.Date(1980, 1, 1, 0, 0, 1, 0, time.UTC)}
		switch f[0] {
		case "dir":
			h.Typeflag = tar.TypeDir
		case "symlink":
			h.Typeflag = tar.TypeSymlink
		default:
			h.Typeflag = tar.TypeReg
		}
		if err := tw.WriteHeader(h); err != nil {
			panic(err)
		}
		if _, err := tw.Write([]byte(strings.Repeat("x", int(size)))); err != nil {
			panic(err)
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
}
