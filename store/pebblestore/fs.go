package pebblestore

import (
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// markerSyncFS syncs a directory before a Pebble marker file
// (marker.manifest.*, which names the current MANIFEST) is created in it.
//
// Pebble v2.1.7 creates a new MANIFEST at every Open and at every MANIFEST
// rotation, then the marker naming it, with no directory sync between the
// two. On a file system that may persist metadata out of order, a crash in
// that window can keep the marker and lose the MANIFEST, and the store no
// longer opens although all its data was synced. Pebble fixed this upstream
// (cockroachdb/pebble#5915, for #5825) after the release this module uses;
// the wrapper closes the window until a v2 release carries the fix. It
// costs one directory sync per Open and per MANIFEST rotation.
type markerSyncFS struct{ vfs.FS }

// Create implements vfs.FS.
func (fs markerSyncFS) Create(name string, cat vfs.DiskWriteCategory) (vfs.File, error) {
	if strings.HasPrefix(fs.PathBase(name), "marker.") {
		d, err := fs.OpenDir(fs.PathDir(name))
		if err != nil {
			return nil, err
		}
		err = d.Sync()
		if cerr := d.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
	}
	return fs.FS.Create(name, cat)
}
