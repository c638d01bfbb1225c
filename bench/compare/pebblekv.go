package compare

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// PebbleKV is Pebble used the plain way: one key per receipt and no bitmaps.
//
//	g<gid>h          group: version, current member count, next index
//	g<gid>u<user>    member: index, joined and left versions
//	g<gid>m<index>   member by index: joined, left, user (pages walk these)
//	m<gid><msg>h     message: version, recipient count, sender
//	m<gid><msg>c     read count, an int64 kept by a summing merge operator
//	m<gid><msg>r<index>  one key per receipt, the reader's ID as value
//
// (<gid> and <msg> are length-prefixed; <index> is 4 bytes big-endian, so
// that keys sort in member order.) Recipients are found the way Map finds
// them, from versioned membership, without a copy of the member list.
// A receipt checks its key under a lock striped by reader, then writes the
// key and a +1 merge in one batch, synced (pebble.Sync) unless SetSync(false);
// concurrent synced batches share fsyncs (Pebble's group commit). It has the
// same block cache (64 MiB) and memtable size (16 MiB) as the engine's store.
type PebbleKV struct {
	dir string
	wo  atomic.Pointer[pebble.WriteOptions]

	memberMu sync.Mutex // serialises membership changes and tracking
	stripes  [256]sync.Mutex
	seed     maphash.Seed

	mu sync.RWMutex // guards db against Reopen
	db *pebble.DB

	subs subRegistry
}

var (
	_ System    = (*PebbleKV)(nil)
	_ Notifier  = (*PebbleKV)(nil)
	_ Footprint = (*PebbleKV)(nil)
	_ Reopener  = (*PebbleKV)(nil)
	_ Syncer    = (*PebbleKV)(nil)
	_ Loader    = (*PebbleKV)(nil)
	_ Deleter   = (*PebbleKV)(nil)
)

// NewPebbleKV opens (creating if needed) the database in dir, with sync
// writes on.
func NewPebbleKV(dir string) (*PebbleKV, error) {
	s := &PebbleKV{dir: dir, seed: maphash.MakeSeed()}
	s.wo.Store(pebble.Sync)
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

type quietLogger struct{}

func (quietLogger) Infof(string, ...any)        {}
func (quietLogger) Errorf(f string, a ...any)   { fmt.Printf("pebblekv: "+f+"\n", a...) }
func (quietLogger) Fatalf(f string, a ...any)   { panic(fmt.Sprintf("pebblekv: "+f, a...)) }
func (s *PebbleKV) wopts() *pebble.WriteOptions { return s.wo.Load() }

func (s *PebbleKV) open() error {
	cache := pebble.NewCache(64 << 20)
	defer cache.Unref()
	db, err := pebble.Open(s.dir, &pebble.Options{
		Cache:        cache,
		MemTableSize: 16 << 20,
		Merger:       &pebble.Merger{Name: "compare.sum.v1", Merge: newSum},
		Logger:       quietLogger{},
	})
	if err != nil {
		return err
	}
	s.db = db
	return nil
}

// sum folds int64 little-endian operands.
type sum struct{ n int64 }

func newSum(_, value []byte) (pebble.ValueMerger, error) {
	s := &sum{}
	return s, s.MergeNewer(value)
}

func (s *sum) MergeNewer(v []byte) error {
	if len(v) != 8 {
		return fmt.Errorf("%w: counter operand of %d bytes", ErrBadInput, len(v))
	}
	s.n += int64(binary.LittleEndian.Uint64(v))
	return nil
}
func (s *sum) MergeOlder(v []byte) error { return s.MergeNewer(v) }
func (s *sum) Finish(bool) ([]byte, io.Closer, error) {
	return binary.LittleEndian.AppendUint64(nil, uint64(s.n)), nil, nil
}

var plusOne = binary.LittleEndian.AppendUint64(nil, 1)

// Name implements System.
func (s *PebbleKV) Name() string { return "pebblekv" }

func lp(b []byte, s string) []byte { return append(binary.AppendUvarint(b, uint64(len(s))), s...) }

func gkey(gid string, kind byte) []byte { return append(lp([]byte{'g'}, gid), kind) }
func ukey(gid, user string) []byte      { return append(gkey(gid, 'u'), user...) }
func ikey(gid string, idx uint32) []byte {
	return binary.BigEndian.AppendUint32(gkey(gid, 'm'), idx)
}
func mkey(gid, msg string, kind byte) []byte { return append(lp(lp([]byte{'m'}, gid), msg), kind) }
func rkey(gid, msg string, idx uint32) []byte {
	return binary.BigEndian.AppendUint32(mkey(gid, msg, 'r'), idx)
}

type kvGroup struct {
	version       uint64
	current, next uint32
}

type kvMember struct {
	idx          uint32
	joined, left uint64
}

func (m kvMember) recipientAt(v uint64) bool { return m.joined <= v && (m.left == 0 || m.left > v) }

func (s *PebbleKV) get(db *pebble.DB, k []byte) ([]byte, bool, error) {
	v, c, err := db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := bytes.Clone(v)
	c.Close()
	return out, true, nil
}

func (s *PebbleKV) group(db *pebble.DB, gid string) (kvGroup, bool, error) {
	v, ok, err := s.get(db, gkey(gid, 'h'))
	if err != nil || !ok {
		return kvGroup{}, ok, err
	}
	return kvGroup{binary.BigEndian.Uint64(v), binary.BigEndian.Uint32(v[8:]), binary.BigEndian.Uint32(v[12:])}, true, nil
}

func (g kvGroup) bytes() []byte {
	b := binary.BigEndian.AppendUint64(nil, g.version)
	b = binary.BigEndian.AppendUint32(b, g.current)
	return binary.BigEndian.AppendUint32(b, g.next)
}

func (s *PebbleKV) member(db *pebble.DB, gid, user string) (kvMember, bool, error) {
	v, ok, err := s.get(db, ukey(gid, user))
	if err != nil || !ok {
		return kvMember{}, ok, err
	}
	return kvMember{binary.BigEndian.Uint32(v), binary.BigEndian.Uint64(v[4:]), binary.BigEndian.Uint64(v[12:])}, true, nil
}

func (s *PebbleKV) putMember(b *pebble.Batch, gid, user string, m kvMember) {
	v := binary.BigEndian.AppendUint32(nil, m.idx)
	v = binary.BigEndian.AppendUint64(v, m.joined)
	v = binary.BigEndian.AppendUint64(v, m.left)
	b.Set(ukey(gid, user), v, nil)
	w := binary.BigEndian.AppendUint64(nil, m.joined)
	w = binary.BigEndian.AppendUint64(w, m.left)
	b.Set(ikey(gid, m.idx), append(w, user...), nil)
}

// CreateGroup implements System with one batch per 100,000 members.
func (s *PebbleKV) CreateGroup(_ context.Context, gid string, members []string) error {
	s.memberMu.Lock()
	defer s.memberMu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok, err := s.group(s.db, gid); err != nil || ok {
		if ok {
			return fmt.Errorf("%w: %q", ErrGroupExists, gid)
		}
		return err
	}
	members = dedupe(members)
	for i := 0; i < len(members); i += 100_000 {
		b := s.db.NewBatch()
		for j, m := range members[i:min(i+100_000, len(members))] {
			s.putMember(b, gid, m, kvMember{idx: uint32(i + j), joined: 1})
		}
		if err := b.Commit(s.wopts()); err != nil {
			return err
		}
	}
	n := uint32(len(members))
	return s.db.Set(gkey(gid, 'h'), kvGroup{1, n, n}.bytes(), s.wopts())
}

// AddMembers implements System.
func (s *PebbleKV) AddMembers(_ context.Context, gid string, members []string) error {
	return s.changeMembers(gid, members, true)
}

// RemoveMembers implements System.
func (s *PebbleKV) RemoveMembers(_ context.Context, gid string, members []string) error {
	return s.changeMembers(gid, members, false)
}

func (s *PebbleKV) changeMembers(gid string, members []string, add bool) error {
	s.memberMu.Lock()
	defer s.memberMu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	g, ok, err := s.group(s.db, gid)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: group %q", ErrNotFound, gid)
	}
	g.version++
	b := s.db.NewBatch()
	for _, u := range dedupe(members) {
		m, ok, err := s.member(s.db, gid, u)
		if err != nil {
			return err
		}
		switch {
		case add && ok && m.left != 0:
			return fmt.Errorf("%w: %q", ErrRejoin, u)
		case add && !ok:
			s.putMember(b, gid, u, kvMember{idx: g.next, joined: g.version})
			g.next++
			g.current++
		case !add && ok && m.left == 0:
			m.left = g.version
			s.putMember(b, gid, u, m)
			g.current--
		}
	}
	b.Set(gkey(gid, 'h'), g.bytes(), nil)
	return b.Commit(s.wopts())
}

type kvMsg struct {
	version    uint64
	recipients uint32
	sender     string
}

func (s *PebbleKV) msg(db *pebble.DB, gid, id string) (kvMsg, bool, error) {
	v, ok, err := s.get(db, mkey(gid, id, 'h'))
	if err != nil || !ok {
		return kvMsg{}, ok, err
	}
	return kvMsg{binary.BigEndian.Uint64(v), binary.BigEndian.Uint32(v[8:]), string(v[12:])}, true, nil
}

// Track implements System.
func (s *PebbleKV) Track(_ context.Context, gid, msgID, sender string) error {
	s.memberMu.Lock()
	defer s.memberMu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	g, ok, err := s.group(s.db, gid)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: group %q", ErrNotFound, gid)
	}
	if _, ok, err := s.msg(s.db, gid, msgID); err != nil || ok {
		return err
	}
	n := g.current
	if m, ok, err := s.member(s.db, gid, sender); err != nil {
		return err
	} else if ok && m.left == 0 {
		n--
	}
	v := binary.BigEndian.AppendUint64(nil, g.version)
	v = binary.BigEndian.AppendUint32(v, n)
	return s.db.Set(mkey(gid, msgID, 'h'), append(v, sender...), s.wopts())
}

// Receipts implements System.
func (s *PebbleKV) Receipts(_ context.Context, gid, reader string, msgIDs []string) (int, error) {
	st := &s.stripes[maphash.String(s.seed, reader)%uint64(len(s.stripes))]
	st.Lock()
	defer st.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	m, ok, err := s.member(s.db, gid, reader)
	if err != nil || !ok {
		return 0, err
	}
	b := s.db.NewBatch()
	defer b.Close()
	var recorded []string
	for _, id := range dedupe(msgIDs) {
		h, ok, err := s.msg(s.db, gid, id)
		if err != nil {
			return 0, err
		}
		if !ok || h.sender == reader || !m.recipientAt(h.version) {
			continue
		}
		k := rkey(gid, id, m.idx)
		if _, seen, err := s.get(s.db, k); err != nil {
			return 0, err
		} else if seen {
			continue
		}
		b.Set(k, []byte(reader), nil)
		b.Merge(mkey(gid, id, 'c'), plusOne, nil)
		recorded = append(recorded, id)
	}
	if len(recorded) == 0 {
		return 0, nil
	}
	if err := b.Commit(s.wopts()); err != nil {
		return 0, err
	}
	s.notify(gid, reader, recorded)
	return len(recorded), nil
}

// Load implements Loader: batches of 10,000 receipts, no existence checks
// (the Loader contract says they are all new).
func (s *PebbleKV) Load(ctx context.Context, gid, msgID string, readers []string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for len(readers) > 0 {
		n := min(len(readers), 10_000)
		b := s.db.NewBatch()
		for _, r := range readers[:n] {
			m, ok, err := s.member(s.db, gid, r)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%w: %q is not a member", ErrBadInput, r)
			}
			b.Set(rkey(gid, msgID, m.idx), []byte(r), nil)
		}
		b.Merge(mkey(gid, msgID, 'c'), binary.LittleEndian.AppendUint64(nil, uint64(n)), nil)
		if err := b.Commit(s.wopts()); err != nil {
			return err
		}
		readers = readers[n:]
	}
	return nil
}

func (s *PebbleKV) notify(gid, reader string, ids []string) {
	fns := s.subs.list(gid)
	if len(fns) == 0 {
		return
	}
	cs, err := s.Counts(context.Background(), gid, ids)
	if err != nil {
		return
	}
	for i, id := range ids {
		for _, fn := range fns {
			fn(Event{MsgID: id, Reader: reader, Read: cs[i].Read, Unread: cs[i].Unread})
		}
	}
}

// Counts implements System.
func (s *PebbleKV) Counts(_ context.Context, gid string, msgIDs []string) ([]Count, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]Count, len(msgIDs))
	for i, id := range msgIDs {
		h, ok, err := s.msg(s.db, gid, id)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		v, ok, err := s.get(s.db, mkey(gid, id, 'c'))
		if err != nil {
			return nil, err
		}
		var r int
		if ok {
			r = int(binary.LittleEndian.Uint64(v))
		}
		out[i] = Count{Found: true, Read: r, Unread: int(h.recipients) - r}
	}
	return out, nil
}

// Page implements System. A read page iterates the message's receipt keys
// from the cursor; an unread page iterates the members from the cursor and
// steps a receipt iterator alongside, skipping those who have read.
func (s *PebbleKV) Page(_ context.Context, gid, msgID string, unread bool, cursor string, n int) ([]string, string, bool, error) {
	if err := checkPage(n); err != nil {
		return nil, "", false, err
	}
	at, err := parseCursor(cursor)
	if err != nil {
		return nil, "", false, err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	h, ok, err := s.msg(s.db, gid, msgID)
	if err != nil {
		return nil, "", false, err
	}
	if !ok {
		return nil, "", false, fmt.Errorf("%w: message %q", ErrNotFound, msgID)
	}
	rp := mkey(gid, msgID, 'r')
	rit, err := s.db.NewIter(&pebble.IterOptions{LowerBound: rp, UpperBound: append(bytes.Clone(rp), 0xff, 0xff, 0xff, 0xff, 0xff)})
	if err != nil {
		return nil, "", false, err
	}
	defer rit.Close()
	var users []string
	if !unread {
		for ok := rit.SeekGE(rkey(gid, msgID, at)); ok; ok = rit.Next() {
			idx := binary.BigEndian.Uint32(rit.Key()[len(rp):])
			if len(users) == n {
				return users, formatCursor(idx), false, nil
			}
			users = append(users, string(rit.Value()))
		}
		return users, "", true, rit.Error()
	}
	mp := gkey(gid, 'm')
	mit, err := s.db.NewIter(&pebble.IterOptions{LowerBound: mp, UpperBound: append(bytes.Clone(mp), 0xff, 0xff, 0xff, 0xff, 0xff)})
	if err != nil {
		return nil, "", false, err
	}
	defer mit.Close()
	rok := rit.SeekGE(rkey(gid, msgID, at))
	for ok := mit.SeekGE(ikey(gid, at)); ok; ok = mit.Next() {
		k, v := mit.Key(), mit.Value()
		idx := binary.BigEndian.Uint32(k[len(mp):])
		m := kvMember{idx: idx, joined: binary.BigEndian.Uint64(v), left: binary.BigEndian.Uint64(v[8:])}
		user := v[16:]
		if !m.recipientAt(h.version) || string(user) == h.sender {
			continue
		}
		for rok && binary.BigEndian.Uint32(rit.Key()[len(rp):]) < idx {
			rok = rit.Next()
		}
		if rok && binary.BigEndian.Uint32(rit.Key()[len(rp):]) == idx {
			continue
		}
		if len(users) == n {
			return users, formatCursor(idx), false, nil
		}
		users = append(users, string(user))
	}
	if err := errors.Join(mit.Error(), rit.Error()); err != nil {
		return nil, "", false, err
	}
	return users, "", true, nil
}

// Subscribe implements Notifier: fn runs on the goroutine that recorded the
// receipt, after its batch is committed.
func (s *PebbleKV) Subscribe(_ context.Context, gid string, fn func(Event)) (func(), error) {
	return s.subs.add(gid, fn), nil
}

// Delete implements Deleter.
func (s *PebbleKV) Delete(_ context.Context, gid string, msgIDs []string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b := s.db.NewBatch()
	for _, id := range msgIDs {
		p := mkey(gid, id, 0)
		p = p[:len(p)-1]
		b.DeleteRange(p, append(bytes.Clone(p), 0xff), nil)
	}
	return b.Commit(s.wopts())
}

// Footprint implements Footprint as Engine does.
func (s *PebbleKV) Footprint(ctx context.Context) (int64, int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.db.Flush(); err != nil {
		return 0, 0, err
	}
	if err := s.db.Compact(ctx, []byte{0}, []byte{0xff}, true); err != nil {
		return 0, 0, err
	}
	disk, err := dirSize(s.dir)
	if err != nil {
		return 0, 0, err
	}
	m := s.db.Metrics()
	return disk, goHeap() + m.BlockCache.Size, nil
}

// Stop implements Reopener.
func (s *PebbleKV) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.db.Close()
}

// Start implements Reopener.
func (s *PebbleKV) Start(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open()
}

// SetSync implements Syncer.
func (s *PebbleKV) SetSync(_ context.Context, on bool) error {
	if on {
		s.wo.Store(pebble.Sync)
	} else {
		s.wo.Store(pebble.NoSync)
	}
	return nil
}

// Close implements System.
func (s *PebbleKV) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.db.Close()
}
