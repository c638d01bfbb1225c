package pebblestore

import (
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/stretchr/testify/require"
)

// logFS records the directory syncs and file creations Pebble makes.
type logFS struct {
	vfs.FS
	mu  *sync.Mutex
	log *[]string
}

func (fs logFS) add(s string) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	*fs.log = append(*fs.log, s)
}

func (fs logFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	fs.add("create " + fs.PathBase(name))
	return fs.FS.Create(name, cat)
}

func (fs logFS) OpenDir(name string) (vfs.File, error) {
	f, err := fs.FS.OpenDir(name)
	if err != nil {
		return nil, err
	}
	return dirFile{File: f, fs: fs}, nil
}

type dirFile struct {
	vfs.File
	fs logFS
}

func (d dirFile) Sync() error {
	d.fs.add("sync dir")
	return d.File.Sync()
}

// Every MANIFEST a store creates is made durable in its directory before
// the marker that names it is created: a crash between the two must not
// leave a marker naming a MANIFEST that is gone (see markerSyncFS).
func TestManifestDurableBeforeItsMarker(t *testing.T) {
	var mu sync.Mutex
	var log []string
	fs := logFS{FS: vfs.NewMem(), mu: &mu, log: &log}
	for range 2 { // create, then reopen: each open writes a new MANIFEST
		s, err := Open("db", &Options{FS: fs})
		require.NoError(t, err)
		require.NoError(t, s.Close())
	}
	mu.Lock()
	defer mu.Unlock()
	markers := 0
	for i, op := range log {
		if !strings.HasPrefix(op, "create marker.manifest.") {
			continue
		}
		markers++
		manifest := strings.TrimPrefix(op[strings.LastIndex(op, "."):], ".")
		created, synced := -1, -1
		for j := range i {
			switch {
			case log[j] == "create "+manifest:
				created = j
			case log[j] == "sync dir" && created >= 0:
				synced = j
			}
		}
		require.GreaterOrEqual(t, created, 0, "%s: its MANIFEST was not created before it\n%s", op, strings.Join(log, "\n"))
		require.Greater(t, synced, created, "%s: no directory sync between its MANIFEST and it\n%s", op, strings.Join(log, "\n"))
	}
	require.GreaterOrEqual(t, markers, 2, "every open moves the manifest marker:\n%s", strings.Join(log, "\n"))
}
