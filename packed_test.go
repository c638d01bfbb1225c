package readreceipt

import (
	"fmt"
	"reflect"
	"testing"
)

// packedEntries are entries as loads and commits leave them, in the forms
// a record has to hold.
func packedEntries() map[string]*msgEntry {
	words := func(n int) []uint64 {
		w := make([]uint64, n)
		for i := range w {
			w[i] = uint64(i+1)*0x9e3779b97f4a7c15 | 1<<63
		}
		return w
	}
	out := map[string]*msgEntry{}
	add := func(name string, m *msgEntry, w []uint64) {
		m.loaded = true
		if w != nil {
			m.r0ok = true
			m.setR0words(w)
		}
		out[name] = m
	}
	add("absent", &msgEntry{key: "\x01g\x02m1", size: entryOverhead}, nil)
	add("group", &msgEntry{key: "\x01grp\x05msg-1", size: 256, exists: true, deltas: 3, count: 100,
		meta: messageRecord{Sender: "u-17", TrackedAt: 1_790_000_000_123_456_789, Incarnation: 1<<63 + 5, Version: 9,
			EndIndex: 200, SenderIndex: 17, Recipients: 199, Nonce: 0xdeadbeef}}, words(4))
	add("group, chunk 3, thread", &msgEntry{key: "k", size: 300, exists: true, count: 2, r0hi: 3,
		meta: messageRecord{Sender: "s", Thread: "t-9", TrackedAt: 1, Incarnation: 1, Version: 1<<40 + 1,
			EndIndex: 1 << 20, SenderIndex: noIndex, Recipients: 1 << 20}}, words(packMaxWords))
	add("group, no readers loaded", &msgEntry{key: "k2", size: entryOverhead, exists: true, count: 7,
		meta: messageRecord{Sender: "s", EndIndex: 5000, SenderIndex: 3, Recipients: 4999}}, nil)
	add("c2c", &msgEntry{key: "\x02a\x02b\x01x", size: entryOverhead, exists: true, count: 1, readAt: -1,
		meta: messageRecord{Sender: "a", TrackedAt: -5, SenderIndex: noIndex, Recipients: 1}}, nil)
	add("empty chunk", &msgEntry{key: "k3", size: entryOverhead, exists: true,
		meta: messageRecord{Sender: "s", EndIndex: 3, Recipients: 2}}, []uint64{})
	return out
}

// entryState is what a record must keep of an entry.
type entryState struct {
	Key                  string
	Size                 int32
	Deltas               uint16
	Loaded, Exists, R0ok bool
	R0hi                 uint16
	Words                []uint64
	Meta                 messageRecord
	Count, ReadAt        int64
}

func stateOf(m *msgEntry) entryState {
	return entryState{m.key, m.size, m.deltas, m.loaded, m.exists, m.r0ok, m.r0hi,
		append([]uint64(nil), m.r0words()...), m.meta, m.count, m.readAt}
}

// TestPackedEntryRoundTrip: an entry made again from its record is the
// entry that was packed, field for field, size included; a view (peek's)
// has the same meta and counts, without readers.
func TestPackedEntryRoundTrip(t *testing.T) {
	for name, m := range packedEntries() {
		t.Run(name, func(t *testing.T) {
			if !m.packable() {
				t.Fatal("not packable")
			}
			b, ok := m.appendPacked(nil)
			if !ok {
				t.Fatal("does not fit a record")
			}
			if string(recKey(b)) != m.key {
				t.Fatalf("record key %q, want %q", recKey(b), m.key)
			}
			if got := recBytes(&b[0]); len(got) != len(b) {
				t.Fatalf("record says %d bytes, has %d", len(got), len(b))
			}
			var got msgEntry
			unpack(b, &got, false)
			if got.r0ok && len(m.r0words()) > 0 && &got.r0words()[0] == &m.r0words()[0] {
				t.Fatal("unpacked readers share the packed entry's words")
			}
			if g, w := stateOf(&got), stateOf(m); !reflect.DeepEqual(g, w) {
				t.Fatalf("unpacked\n %+v\nwant\n %+v", g, w)
			}
			var v msgEntry
			unpack(b, &v, true)
			if v.key != m.key || v.meta != m.meta || v.count != m.count || v.readAt != m.readAt || v.exists != m.exists || v.r0p != nil {
				t.Fatalf("view %+v of %+v", stateOf(&v), stateOf(m))
			}
		})
	}
}

// TestPackedEntryNotPackable: what a record cannot hold keeps an entry
// unpacked.
func TestPackedEntryNotPackable(t *testing.T) {
	base := func() *msgEntry {
		m := &msgEntry{key: "k", loaded: true, exists: true, r0ok: true}
		m.setR0words(make([]uint64, 4))
		return m
	}
	for name, mod := range map[string]func(m *msgEntry){
		"not loaded":    func(m *msgEntry) { m.loaded = false },
		"pinned":        func(m *msgEntry) { m.refs = 1 },
		"pending":       func(m *msgEntry) { m.npend = 1 },
		"unfolded":      func(m *msgEntry) { m.unfolded = 1 },
		"rare part":     func(m *msgEntry) { m.more().model = &msgModel{dn: 1} },
		"large readers": func(m *msgEntry) { m.setR0words(make([]uint64, packMaxWords+1)) },
	} {
		m := base()
		if !m.packable() {
			t.Fatal("the base entry is not packable")
		}
		mod(m)
		if m.packable() {
			t.Errorf("%s: packable", name)
		}
	}
}

// TestEntryTablePacks: past its hot bound a shard packs the entries no
// call uses; a count reads a packed entry in place, acquire makes it the
// entry it was; the shard's bytes are always its entries' sizes and its
// records' charges; over its bytes it drops the packed entries nobody
// read before those read, and never a pinned entry.
func TestEntryTablePacks(t *testing.T) {
	const hot = 4
	tab := newEntryTable(cacheShards * 64 << 10)
	s := &tab.shards[0]
	s.hot = hot
	keys := oneShardKeys(400)
	want := map[string]entryState{}
	fill := func(k []byte, i int) {
		e := tab.acquire(k)
		e.mu.Lock()
		if !e.loaded {
			w := make([]uint64, 1+i%4)
			w[0] = uint64(i)
			e.load(true, messageRecord{Sender: fmt.Sprint("u", i), EndIndex: uint32(64 * len(w)), Recipients: uint32(i)}, 0, int64(i), nil)
			e.r0ok = true
			e.setR0words(w)
			e.count = int64(i)
			e.deltas = uint16(i % 7)
			e.mu.Unlock()
			tab.charge(e, int64(8*len(w)))
		} else {
			e.mu.Unlock()
		}
		e.mu.Lock()
		want[e.key] = stateOf(e)
		e.mu.Unlock()
		tab.release(e)
	}
	accounted := func(when string) {
		t.Helper()
		var sum int64
		s.items.each(func(e *msgEntry) { sum += int64(e.size) })
		for _, p := range s.idle.slots {
			if p != nil {
				sum += recCharge(recBytes(p))
			}
		}
		if sum != s.bytes {
			t.Fatalf("%s: shard counts %d bytes, holds %d", when, s.bytes, sum)
		}
	}
	for i, k := range keys[:200] {
		fill(k, i)
		if s.items.n > hot+1 {
			t.Fatalf("after %d entries: %d unpacked, bound %d", i+1, s.items.n, hot)
		}
		accounted(fmt.Sprint("filling ", i))
	}
	if s.idle.n != 200-s.items.n {
		t.Fatalf("%d packed and %d unpacked of 200", s.idle.n, s.items.n)
	}

	// Counts read packed entries in place, without unpacking them.
	for _, k := range keys[:200] {
		var count int64
		var sender string
		if !tab.peek(k, keyHash(k), func(m *msgEntry) { count, sender = m.count, m.meta.Sender }) {
			t.Fatalf("%s: not found", k)
		}
		if w := want[string(k)]; count != w.Count || sender != w.Meta.Sender {
			t.Fatalf("%s: peek read count %d sender %q, want %d %q", k, count, sender, w.Count, w.Meta.Sender)
		}
	}
	if s.idle.n != 200-s.items.n {
		t.Fatalf("peek unpacked entries: %d packed", s.idle.n)
	}

	// Acquired again, every entry is what it was.
	for _, k := range keys[:200] {
		e := tab.acquire(k)
		e.mu.Lock()
		got := stateOf(e)
		e.mu.Unlock()
		if w := want[string(k)]; !reflect.DeepEqual(got, w) {
			t.Fatalf("%s: acquired\n %+v\nwant\n %+v", k, got, w)
		}
		tab.release(e)
		accounted(fmt.Sprint("acquiring ", string(k)))
	}

	// Over its bytes: the packed entries read since the idle hand passed
	// outlast those nobody read; a pinned entry stays.
	pinned := tab.acquire(keys[0])
	read := map[string]bool{}
	for i, k := range keys[:200] {
		if i%2 == 0 {
			read[string(k)] = true
		}
	}
	s.cap = s.bytes * 3 / 4
	for i, k := range keys[200:260] {
		for rk := range read {
			tab.peek([]byte(rk), keyHash([]byte(rk)), func(*msgEntry) {})
		}
		fill(k, 200+i)
		if s.bytes > s.cap {
			t.Fatalf("over its bytes after a release: %d > %d", s.bytes, s.cap)
		}
		accounted(fmt.Sprint("dropping ", i))
	}
	for _, k := range keys[:200] {
		found := tab.peek(k, keyHash(k), func(*msgEntry) {})
		if read[string(k)] && !found {
			t.Fatalf("%s, read before every release, was dropped", k)
		}
	}
	if s.items.get([]byte(pinned.key), keyHash([]byte(pinned.key))) != pinned {
		t.Fatal("the pinned entry was dropped")
	}
	tab.release(pinned)
}

// BenchmarkEntry: a count's lookup of a message in the entry table (peek)
// and a call's use of it (acquire, release), on an entry or on a packed
// one: peek reads the record in place, acquire unpacks it and release
// packs it again (the shard's hot bound is 0).
func BenchmarkEntry(b *testing.B) {
	for _, op := range []string{"peek", "acquire"} {
		for _, packed := range []bool{false, true} {
			b.Run(fmt.Sprintf("op=%s/packed=%v", op, packed), func(b *testing.B) {
				tab := newEntryTable(cacheShards * 64 << 20)
				keys := make([][]byte, 1024)
				hs := make([]uint64, len(keys)) // peek gets the hash, as countsInto makes it
				for i := range keys {
					keys[i] = fmt.Appendf(nil, "\x01g-%06d\x0bm-%08d", i%7, i)
					hs[i] = keyHash(keys[i])
					e := tab.acquire(keys[i])
					e.mu.Lock()
					e.load(true, messageRecord{Sender: "u-000001", TrackedAt: 1_790_000_000_000_000_000, Incarnation: 1 << 62,
						Version: 3, EndIndex: 200, SenderIndex: 1, Recipients: 199, Nonce: 7}, 0, 0, nil)
					e.r0ok, e.count = true, 100
					e.setR0words(make([]uint64, 4))
					e.mu.Unlock()
					tab.release(e)
				}
				for i := range tab.shards {
					s := &tab.shards[i]
					if packed {
						s.hot = 0
					}
					s.mu.Lock()
					for s.items.n > s.hot {
						s.evict(nil)
					}
					s.mu.Unlock()
				}
				var count int64
				read := func(m *msgEntry) { count += m.count + int64(len(m.meta.Sender)) }
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					k := keys[i&1023]
					if op == "peek" {
						if !tab.peek(k, hs[i&1023], read) {
							b.Fatal("not found")
						}
						continue
					}
					e := tab.acquire(k)
					if !e.loaded {
						b.Fatal("not found")
					}
					tab.release(e)
				}
			})
		}
	}
}
