package readreceipt

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/require"
)

// A message record round-trips in both formats: a track time in whole
// microseconds takes the short one (messageV2), any other the nanosecond
// one (recordV1), which is also how schema-3 stores wrote every record.
func TestMessageRecordFormats(t *testing.T) {
	for _, c := range []struct {
		at     int64
		format byte
	}{
		{1764650000123456000, messageV2},
		{1764650000123456789, recordV1},
		{0, messageV2},
		{-5_000, messageV2},
		{-5_001, recordV1},
		{trackedEpochMicros * 1000, messageV2},
	} {
		rec := messageRecord{Sender: "s", TrackedAt: c.at, Incarnation: 3, Version: 7, EndIndex: 200, SenderIndex: 5, Recipients: 199, Nonce: 0xdeadbeef, Thread: "th"}
		b := rec.encode()
		if b[0] != c.format {
			t.Errorf("TrackedAt %d: format %d, want %d", c.at, b[0], c.format)
		}
		got, err := decodeMessage(b)
		if err != nil || got != rec {
			t.Errorf("TrackedAt %d: decoded %+v, %v", c.at, got, err)
		}
	}
	// A record as schema 3 wrote it, by hand.
	b := []byte{recordV1, 1, 's'}
	b = binary.AppendVarint(b, 1764650000123456789)
	for _, v := range []uint64{3, 7, 200, 5, 199} {
		b = binary.AppendUvarint(b, v)
	}
	b = binary.BigEndian.AppendUint32(b, 9)
	got, err := decodeMessage(b)
	want := messageRecord{Sender: "s", TrackedAt: 1764650000123456789, Incarnation: 3, Version: 7, EndIndex: 200, SenderIndex: 5, Recipients: 199, Nonce: 9}
	if err != nil || got != want {
		t.Errorf("schema-3 record: %+v, %v", got, err)
	}
	// Now's records are two bytes shorter.
	now := messageRecord{Sender: "s", TrackedAt: 1764650000123456000}
	old := now
	old.TrackedAt++
	if d := len(old.encode()) - len(now.encode()); d != 2 {
		t.Errorf("the short form saves %d bytes, want 2", d)
	}
}

// TestDecodeMessageLike: a record decoded like another equals the plain
// decoding, and shares the other's sender and thread strings exactly where
// they are the same.
func TestDecodeMessageLike(t *testing.T) {
	a := messageRecord{Sender: "alice", TrackedAt: 1_767_225_600_000_000_000, Incarnation: 3, Version: 4, EndIndex: 200, SenderIndex: 1, Recipients: 199, Nonce: 7, Thread: "t1"}
	like, err := decodeMessage(a.encode())
	require.NoError(t, err)
	for _, r := range []messageRecord{a, {Sender: "alice", TrackedAt: 5, Recipients: 1, Nonce: 1}, {Sender: "bob", TrackedAt: 5, Recipients: 1, Thread: "t1"}} {
		got, err := decodeMessageLike(r.encode(), &like)
		require.NoError(t, err)
		require.Equal(t, r, got)
		shared := func(x, y string) bool { return x != "" && unsafe.StringData(x) == unsafe.StringData(y) }
		require.Equal(t, r.Sender == like.Sender, shared(got.Sender, like.Sender), "sender %q", r.Sender)
		require.Equal(t, r.Thread == like.Thread && r.Thread != "", shared(got.Thread, like.Thread), "thread %q", r.Thread)
	}
	_, err = decodeMessageLike(a.encode()[:3], &like)
	require.Error(t, err)
}
