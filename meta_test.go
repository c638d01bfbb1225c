package readreceipt

import (
	"encoding/binary"
	"testing"
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
