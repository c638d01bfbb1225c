package compare

import (
	"context"
	"fmt"
	"sync"
)

// Map is what a team writes first: a map[string]map[string]struct{} of
// readers per message behind one mutex, in process. It is not durable: a
// restart loses everything, so it has no Reopen and no disk figure.
//
// Recipients without a copy of the member list: membership is versioned (each
// AddMembers or RemoveMembers call makes a new version), every member records
// the versions it joined and left at, and a message records the version it
// was tracked at. A reader is a recipient when it joined at or before that
// version and had not left by it, and is not the sender.
type Map struct {
	mu      sync.Mutex
	groups  map[string]*mapGroup
	msgs    map[string]*mapMsg             // key gid + "\x00" + msgID
	readers map[string]map[string]struct{} // same key: the readers
	subs    subRegistry
}

type mapGroup struct {
	version uint64
	current int
	members []mapMember // by index
	index   map[string]uint32
}

type mapMember struct {
	id           string
	joined, left uint64 // left 0: still a member
}

type mapMsg struct {
	sender     string
	version    uint64
	recipients int
}

var (
	_ System    = (*Map)(nil)
	_ Notifier  = (*Map)(nil)
	_ Footprint = (*Map)(nil)
	_ Loader    = (*Map)(nil)
	_ Deleter   = (*Map)(nil)
)

// NewMap returns an empty Map.
func NewMap() *Map {
	return &Map{
		groups:  map[string]*mapGroup{},
		msgs:    map[string]*mapMsg{},
		readers: map[string]map[string]struct{}{},
	}
}

// Name implements System.
func (s *Map) Name() string { return "map" }

func msgKey(gid, msgID string) string { return gid + "\x00" + msgID }

// CreateGroup implements System.
func (s *Map) CreateGroup(_ context.Context, gid string, members []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.groups[gid]; ok {
		return fmt.Errorf("%w: %q", ErrGroupExists, gid)
	}
	members = dedupe(members)
	g := &mapGroup{version: 1, current: len(members), members: make([]mapMember, len(members)), index: make(map[string]uint32, len(members))}
	for i, m := range members {
		g.members[i] = mapMember{id: m, joined: 1}
		g.index[m] = uint32(i)
	}
	s.groups[gid] = g
	return nil
}

// AddMembers implements System.
func (s *Map) AddMembers(_ context.Context, gid string, members []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[gid]
	if !ok {
		return fmt.Errorf("%w: group %q", ErrNotFound, gid)
	}
	v := g.version + 1
	for _, m := range dedupe(members) {
		if i, ok := g.index[m]; ok {
			if g.members[i].left != 0 {
				return fmt.Errorf("%w: %q", ErrRejoin, m)
			}
			continue
		}
		g.index[m] = uint32(len(g.members))
		g.members = append(g.members, mapMember{id: m, joined: v})
		g.current++
	}
	g.version = v
	return nil
}

// RemoveMembers implements System.
func (s *Map) RemoveMembers(_ context.Context, gid string, members []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[gid]
	if !ok {
		return fmt.Errorf("%w: group %q", ErrNotFound, gid)
	}
	v := g.version + 1
	for _, m := range members {
		if i, ok := g.index[m]; ok && g.members[i].left == 0 {
			g.members[i].left = v
			g.current--
		}
	}
	g.version = v
	return nil
}

// Track implements System.
func (s *Map) Track(_ context.Context, gid, msgID, sender string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[gid]
	if !ok {
		return fmt.Errorf("%w: group %q", ErrNotFound, gid)
	}
	k := msgKey(gid, msgID)
	if _, ok := s.msgs[k]; ok {
		return nil
	}
	n := g.current
	if i, ok := g.index[sender]; ok && g.members[i].left == 0 {
		n--
	}
	s.msgs[k] = &mapMsg{sender: sender, version: g.version, recipients: n}
	s.readers[k] = map[string]struct{}{}
	return nil
}

func (m *mapMember) recipientAt(v uint64) bool {
	return m.joined <= v && (m.left == 0 || m.left > v)
}

// Receipts implements System.
func (s *Map) Receipts(_ context.Context, gid, reader string, msgIDs []string) (int, error) {
	var evs []Event
	fns := s.subs.list(gid)
	s.mu.Lock()
	g, ok := s.groups[gid]
	if !ok {
		s.mu.Unlock()
		return 0, nil
	}
	i, member := g.index[reader]
	n := 0
	for _, id := range msgIDs {
		k := msgKey(gid, id)
		m, ok := s.msgs[k]
		if !ok || !member || reader == m.sender || !g.members[i].recipientAt(m.version) {
			continue
		}
		rs := s.readers[k]
		if _, ok := rs[reader]; ok {
			continue
		}
		rs[reader] = struct{}{}
		n++
		if len(fns) > 0 {
			evs = append(evs, Event{MsgID: id, Reader: reader, Read: len(rs), Unread: m.recipients - len(rs)})
		}
	}
	s.mu.Unlock()
	for _, ev := range evs {
		for _, fn := range fns {
			fn(ev)
		}
	}
	return n, nil
}

// Load implements Loader.
func (s *Map) Load(ctx context.Context, gid, msgID string, readers []string) error {
	for len(readers) > 0 {
		// Take the lock in slices so that a large load does not hold it long.
		n := min(len(readers), 4096)
		for _, r := range readers[:n] {
			if _, err := s.Receipts(ctx, gid, r, []string{msgID}); err != nil {
				return err
			}
		}
		readers = readers[n:]
	}
	return nil
}

// Counts implements System.
func (s *Map) Counts(_ context.Context, gid string, msgIDs []string) ([]Count, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Count, len(msgIDs))
	for i, id := range msgIDs {
		k := msgKey(gid, id)
		if m, ok := s.msgs[k]; ok {
			r := len(s.readers[k])
			out[i] = Count{Found: true, Read: r, Unread: m.recipients - r}
		}
	}
	return out, nil
}

// Page implements System: it walks the members from the cursor and keeps
// the recipients that match the filter.
func (s *Map) Page(_ context.Context, gid, msgID string, unread bool, cursor string, n int) ([]string, string, bool, error) {
	if err := checkPage(n); err != nil {
		return nil, "", false, err
	}
	at, err := parseCursor(cursor)
	if err != nil {
		return nil, "", false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := msgKey(gid, msgID)
	m, ok := s.msgs[k]
	g := s.groups[gid]
	if !ok || g == nil {
		return nil, "", false, fmt.Errorf("%w: message %q", ErrNotFound, msgID)
	}
	rs := s.readers[k]
	var users []string
	for i := int(at); i < len(g.members); i++ {
		mm := &g.members[i]
		if mm.id == m.sender || !mm.recipientAt(m.version) {
			continue
		}
		if _, read := rs[mm.id]; read == unread {
			continue
		}
		if len(users) == n {
			return users, formatCursor(uint32(i)), false, nil
		}
		users = append(users, mm.id)
	}
	return users, "", true, nil
}

// Subscribe implements Notifier: fn is called on the goroutine that
// recorded the receipt, after the lock is released.
func (s *Map) Subscribe(_ context.Context, gid string, fn func(Event)) (func(), error) {
	return s.subs.add(gid, fn), nil
}

// Delete implements Deleter.
func (s *Map) Delete(_ context.Context, gid string, msgIDs []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range msgIDs {
		delete(s.msgs, msgKey(gid, id))
		delete(s.readers, msgKey(gid, id))
	}
	return nil
}

// Footprint implements Footprint: no disk; memory is the Go heap after a GC.
func (s *Map) Footprint(context.Context) (int64, int64, error) { return 0, goHeap(), nil }

// Close implements System.
func (s *Map) Close() error { return nil }
