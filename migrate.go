package readreceipt

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/readreceipt/readreceipt/store"
)

// Migration from schema 3 at Open.
//
// Schema 3 kept one version key per group message ('g' lp(group) 'v'
// version64 lp(msg), value: trackedAt); schema 4 keeps one counter per
// version ('g' lp(group) 'v' version64). migrate3 rewrites each group's
// version keys in batches: a batch deletes up to migrateBatch of them and
// adds their number to their versions' counters, so the store holds every
// message in a counter or in its old key, never both and never neither.
// The schema key is written last, synced: a crash before it leaves a
// version-3 store whose next Open resumes where the last batch left off
// (the batches are written in order, so a lost one loses those after it).
// Every other key is the same in both schemas.

// migrateBatch is how many old version keys one migration batch rewrites.
// Tests lower it.
var migrateBatch = 4096

func (e *embedded) migrate3(ctx context.Context) error {
	gp := []byte{prefixGroup}
	start, end := gp, prefixEnd(gp)
	for {
		gid, found := "", false
		var bad error
		err := e.st.Scan(ctx, start, end, func(k, _ []byte) bool {
			gid, _, bad = readLP(k[1:])
			found = true
			return false
		})
		if err == nil && bad != nil {
			// Not a key this engine wrote: stop rather than skip the
			// groups after it and call the store migrated.
			err = fmt.Errorf("%w: a group key from %q on", bad, start)
		}
		if err != nil {
			return internalErr("migrate", err)
		}
		if !found {
			break
		}
		if err := e.migrateVersions(ctx, gid); err != nil {
			return err
		}
		start = prefixEnd(groupPrefix(gid))
	}
	var b store.Batch
	b.Set(keySchemaVersion, []byte{schemaVersion})
	return internalErr("migrate", e.st.Write(ctx, &b, store.WriteOptions{Sync: true}))
}

// migrateVersions turns group gid's per-message version keys into
// per-version counters.
func (e *embedded) migrateVersions(ctx context.Context, gid string) error {
	vp := groupKey(gid, groupVersion)
	for {
		var b store.Batch
		counts := map[uint64]int64{}
		var order []uint64
		n := 0
		err := e.st.Scan(ctx, vp, prefixEnd(vp), func(k, _ []byte) bool {
			if len(k) <= len(vp)+8 {
				return true // a counter already (or malformed: Check reports it)
			}
			v := binary.BigEndian.Uint64(k[len(vp):])
			if _, ok := counts[v]; !ok {
				order = append(order, v)
			}
			counts[v]++
			b.Delete(append([]byte(nil), k...))
			n++
			return n < migrateBatch
		})
		if err != nil {
			return internalErr("migrate", err)
		}
		if n == 0 {
			return nil
		}
		for _, v := range order {
			b.Merge(versionCountKey(gid, v), store.EncodeCounter(counts[v]))
		}
		if err := e.st.Write(ctx, &b, store.WriteOptions{}); err != nil {
			return internalErr("migrate", err)
		}
	}
}
