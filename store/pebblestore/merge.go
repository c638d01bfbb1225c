package pebblestore

import (
	"bytes"
	"fmt"
	"io"

	"github.com/cockroachdb/pebble/v2"

	"github.com/readreceipt/readreceipt/store"
)

// MergerName is the name of the Pebble merge operator this package installs.
// Pebble records it in the database and refuses to open the database with a
// merger of another name: the suffix is a format version, to be bumped only
// together with a migration.
const MergerName = "readreceipt.fold.v1"

// merger folds merge operands with store.Folder.
var merger = &pebble.Merger{
	Name: MergerName,
	Merge: func(key, value []byte) (pebble.ValueMerger, error) {
		m := &valueMerger{}
		m.add(value)
		return m, nil
	},
}

// poisonPrefix starts the value that the merge operator produces when the
// operands of a key cannot be folded (operands of different kinds, or a
// merge into a key that holds an opaque value). The message of the fold's
// error follows it.
//
// Pebble runs the merge operator not only on reads but also in flushes and
// compactions, and a merge operator that returns an error there fails the
// flush or compaction, which Pebble then retries forever: the memtable can
// never be flushed and writes eventually stall. So the operator never fails:
// it turns a bad fold into this poison value, which is stable under further
// folding (folding anything with it gives it back), and Get and Scan report
// it as an error wrapping store.ErrBadMerge. Writing the key with Set or
// Delete clears it.
//
// The prefix starts with a byte that is not a merge tag and is long enough
// that no opaque value stored by the engine will start with it by chance.
var poisonPrefix = []byte("\xff\x00readreceipt.bad-merge\x00")

func isPoison(v []byte) bool { return bytes.HasPrefix(v, poisonPrefix) }

// poisonError returns the error that reading the poison value v at key
// yields.
func poisonError(key, v []byte) error {
	return fmt.Errorf("pebblestore: key %q: %w (%s)", key, store.ErrBadMerge, v[len(poisonPrefix):])
}

// valueMerger implements pebble.ValueMerger. Folding counters and sets is
// associative and commutative; an append log keeps write order, so older
// operands go through store.Folder.AddOlder.
type valueMerger struct {
	f store.Folder
	// bad is the message of the first fold error, or of the first poison
	// operand; once it is set, further operands are ignored.
	bad []byte
}

func (m *valueMerger) add(v []byte) { m.fold(v, false) }

func (m *valueMerger) fold(v []byte, older bool) {
	if m.bad != nil {
		return
	}
	if isPoison(v) {
		m.bad = append([]byte(nil), v[len(poisonPrefix):]...)
		return
	}
	add := m.f.Add
	if older {
		add = m.f.AddOlder
	}
	if err := add(v); err != nil {
		m.bad = []byte(err.Error())
	}
}

// MergeNewer implements pebble.ValueMerger. It never fails.
func (m *valueMerger) MergeNewer(value []byte) error {
	m.add(value)
	return nil
}

// MergeOlder implements pebble.ValueMerger. It never fails.
func (m *valueMerger) MergeOlder(value []byte) error {
	m.fold(value, true)
	return nil
}

// Finish implements pebble.ValueMerger. It returns the folded value, or a
// poison value if the operands could not be folded; it never fails.
func (m *valueMerger) Finish(includesBase bool) ([]byte, io.Closer, error) {
	if m.bad == nil {
		v, err := m.f.Value()
		if err == nil {
			return v, nil, nil
		}
		m.bad = []byte(err.Error())
	}
	out := make([]byte, 0, len(poisonPrefix)+len(m.bad))
	out = append(out, poisonPrefix...)
	return append(out, m.bad...), nil, nil
}
