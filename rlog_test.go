package readreceipt

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// A receipt log record reads back as written, and no byte string makes
// decodeLogCall panic; what it accepts reads back the same once written
// again.
func FuzzLogRecord(f *testing.F) {
	c := &logCall{isGroup: true, readTimes: true, idx: 70000, readAt: 1_700_000_000_000_000_000, items: []logItem{
		{key: "mg\x01sm\x01a", act: actRead, trackedAt: 5},
		{key: "mg\x01sm\x01b", act: actRead | actUndeliver, own: true, trackedAt: -1},
		{key: "mc\x01a\x01bm\x01c", act: actPrivate | actDeliver},
	}}
	f.Add(c.encode(nil))
	f.Add((&logCall{}).encode(nil))
	f.Add([]byte{logRecordVersion, 3, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := decodeLogCall(7, data)
		if err != nil {
			return
		}
		require.Equal(t, uint64(7), got.seq)
		again, err := decodeLogCall(7, got.encode(nil))
		require.NoError(t, err)
		require.Equal(t, got, again)
	})
}

func TestLogRecordRoundTrip(t *testing.T) {
	c := &logCall{seq: 3, isGroup: true, idx: 1<<32 - 1, readAt: -5, items: []logItem{
		{key: "k1", act: actRead, trackedAt: 1 << 62},
		{key: "k2", act: actDeliver, own: true},
	}}
	got, err := decodeLogCall(3, c.encode(nil))
	require.NoError(t, err)
	require.Equal(t, c, got)
	for _, bad := range [][]byte{nil, {2, 0}, {logRecordVersion, 4}, append(c.encode(nil), 0)} {
		_, err := decodeLogCall(1, bad)
		require.ErrorIs(t, err, errBadLogRecord, "%x", bad)
	}
}

// Pending marks: two inline, more in a map; any order of marks and unmarks
// leaves exactly the marked readers pending.
func TestPendingMarks(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		var m msgEntry
		want := map[uint32]bool{}
		for range 40 {
			idx := uint32(rng.IntN(6))
			if want[idx] {
				m.unmark(idx)
				delete(want, idx)
			} else {
				m.mark(idx)
				want[idx] = true
			}
			for i := range uint32(6) {
				require.Equal(t, want[i], m.isPending(i), "round %d reader %d", round, i)
			}
			require.Equal(t, len(want) > 0, m.anyPending())
		}
	}
}
