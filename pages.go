package readreceipt

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
)

// MemberFilter selects the members a member page lists.
type MemberFilter uint8

const (
	// FilterRead lists the members who have read the message (the SDK's
	// filter 0).
	FilterRead MemberFilter = 0
	// FilterUnread lists the recipients who have not read it (filter 1).
	FilterUnread MemberFilter = 1
	// FilterDelivered lists the recipients it was delivered to (read or
	// delivery reported).
	FilterDelivered MemberFilter = 2
	// FilterUndelivered lists the recipients it was not delivered to.
	FilterUndelivered MemberFilter = 3
)

// MemberListRequest asks for one page of a group message's read or unread
// members.
type MemberListRequest struct {
	// Message is the group message.
	Message MessageRef
	// Filter is FilterRead, FilterUnread, FilterDelivered or
	// FilterUndelivered.
	Filter MemberFilter
	// Cursor is "" for the first page, then the Cursor of the page before.
	Cursor string
	// Count is how many members to return, 1 to WithMaxPageSize (default
	// 100).
	Count int
}

// MemberPage is one page of a member list.
type MemberPage struct {
	MessageID string
	// IsCompleted reports that no member follows this page.
	IsCompleted bool
	// Cursor continues the list when IsCompleted is false; it is "" when the
	// list is complete.
	Cursor string
	// ReadUserIDList holds the page's members for FilterRead.
	ReadUserIDList []string
	// UnreadUserIDList holds the page's members for FilterUnread.
	UnreadUserIDList []string
	// ReadTimes holds, with WithReadTimes and for FilterRead, when each
	// member of ReadUserIDList read the message (zero for a receipt
	// recorded while read times were off).
	ReadTimes []time.Time
	// DeliveredUserIDList and UndeliveredUserIDList hold the page's
	// members for FilterDelivered and FilterUndelivered.
	DeliveredUserIDList   []string
	UndeliveredUserIDList []string
}

// GetGroupMessageReadMemberList returns one page of the members who have
// (FilterRead) or have not (FilterUnread) read a group message, or to whom
// it was (FilterDelivered) or was not (FilterUndelivered) delivered, in the
// order of their member indexes, that is, of when they first joined the
// group. With WithReadTimes, a FilterRead page also gives when each member
// read it (ReadTimes).
// Walking the pages from Cursor "" until IsCompleted lists every matching
// member exactly once while nothing changes meanwhile; receipts recorded
// during the walk may or may not appear on pages not yet fetched. A page
// costs about its count, not the group's size.
//
// It fails with ErrInvalidParameter for a C2C message, an unknown filter or
// a count <= 0; ErrPageTooLarge for a count over the limit;
// ErrInvalidCursor for a cursor made for another message or filter, or
// altered; ErrReceiptNotFound and ErrPermissionDenied as
// GetMessageReadReceiptList does.
func (e *Engine) GetGroupMessageReadMemberList(ctx context.Context, caller Caller, req MemberListRequest) (MemberPage, error) {
	if err := e.enterReceipts(); err != nil {
		return MemberPage{}, err
	}
	defer e.leave()
	conv, err := e.pageRequest(caller, req)
	if err != nil {
		return MemberPage{}, err
	}
	if req.Filter <= FilterUnread {
		if err := e.reciprocalErr(ctx, caller); err != nil {
			return MemberPage{}, err
		}
	}
	return e.be.page(ctx, caller, conv, req)
}

func (e *embedded) page(ctx context.Context, caller Caller, conv Conversation, req MemberListRequest) (MemberPage, error) {
	gid := conv.GroupID
	ck := convKey(conv)
	lock := e.convLock(ck)
	lock.RLock()
	defer lock.RUnlock()

	g, err := e.loadGroup(ctx, gid)
	if err != nil {
		return MemberPage{}, err
	}
	prefix := messagePrefix(ck, req.Message.ID)
	m := e.entries.acquire(prefix)
	defer e.entries.release(m)
	if err := e.loadEntries(ctx, m); err != nil {
		return MemberPage{}, err
	}
	m.mu.Lock()
	meta, err := e.liveMeta(m, true, g, e.retentionNow())
	m.mu.Unlock()
	if err != nil {
		return MemberPage{}, err
	}
	if err := e.authorize(ctx, e, caller, conv, &meta); err != nil {
		return MemberPage{}, err
	}
	var pos uint32
	if req.Cursor != "" {
		if pos, err = e.decodeCursor(req.Cursor, prefix, &meta, req.Filter); err != nil {
			return MemberPage{}, err
		}
	}

	// Collect up to Count+1 member indexes from pos on: one more than the
	// page, to know whether the list goes on.
	//
	// Delivered is R plus D, undelivered the unread minus D. While dn is
	// 0, D holds only readers, so the lists are the read and unread ones
	// and no chunk of D is read; otherwise each chunk of D is loaded once,
	// like the readers' chunks, and a page combines it with one chunk of
	// readers (or of unread members): a bounded cost per chunk.
	want := req.Count + 1
	idxs := make([]uint32, 0, want)
	last, any := lastChunk(meta.EndIndex)
	filter := req.Filter
	positive := filter == FilterRead || filter == FilterDelivered
	for hi := int(chunkOf(pos)); any && pos < meta.EndIndex && hi <= int(last) && len(idxs) < want; hi++ {
		m.mu.Lock()
		withD := filter >= FilterDelivered && m.dn() > 0
		m.mu.Unlock()
		if positive {
			// In a huge group readers may be sparse: skip the chunks that
			// hold none with one seek instead of one read each.
			next, ok, err := e.nextReaderChunk(ctx, m, uint16(hi), last, withD)
			if err != nil {
				return MemberPage{}, err
			}
			if !ok {
				break
			}
			hi = int(next)
		}
		h := uint16(hi)
		if err := e.ensureReaders(ctx, m, h); err != nil {
			return MemberPage{}, err
		}
		if withD {
			if err := e.ensureModel(ctx, m, h, true, false); err != nil {
				return MemberPage{}, err
			}
		}
		var snap *roaring.Bitmap
		if !positive {
			if snap, err = e.memberChunk(ctx, gid, g.Incarnation, h, meta.Version); err != nil {
				return MemberPage{}, err
			}
		}
		m.mu.Lock()
		readers, ok := m.readers(h) // loaded above (ensureReaders)...
		if !ok || !m.exists || m.meta.Nonce != meta.Nonce || m.meta.TrackedAt != meta.TrackedAt {
			// ... unless the message expired and a TrackMessage of its
			// ID replaced it (under the conversation's read lock, as
			// this call holds it) since: the message this call pages is
			// gone.
			m.mu.Unlock()
			return MemberPage{}, errorf(ErrReceiptNotFound, "expired")
		}
		var d *roaring.Bitmap // chunk h of D, if it holds anybody
		if withD {
			d = m.modelChunk(h, false)
		}
		if positive {
			// The chunk changes under receipts: read it under the lock.
			if d == nil {
				idxs = readers.appendFrom(idxs, h, pos, want)
			} else {
				it := roaring.Or(readers.roaring(h), d).Iterator()
				it.AdvanceIfNeeded(pos)
				for it.HasNext() && len(idxs) < want {
					idxs = append(idxs, it.Next())
				}
			}
			m.mu.Unlock()
			continue
		}
		// The chunk's unread members, made once and then kept current by
		// the receipts: a walk through a mostly read list then costs its
		// pages, not a subtraction of 65,536 bits per page.
		var u *roaring.Bitmap
		if m.x != nil {
			u = m.x.unread.get(h)
		}
		var added int64
		if u == nil {
			u = roaring.AndNot(snap, readers.roaring(h))
			u.Remove(meta.SenderIndex)
			u.RunOptimize()
			added = m.installUnread(h, u)
		}
		if d != nil {
			u = roaring.AndNot(u, d)
		}
		it := u.Iterator()
		it.AdvanceIfNeeded(pos)
		for it.HasNext() && len(idxs) < want {
			idxs = append(idxs, it.Next())
		}
		m.mu.Unlock()
		if added > 0 {
			e.entries.charge(m, added)
		}
	}

	page := MemberPage{MessageID: req.Message.ID, IsCompleted: len(idxs) <= req.Count}
	if !page.IsCompleted {
		page.Cursor = e.encodeCursor(prefix, &meta, req.Filter, idxs[req.Count])
		idxs = idxs[:req.Count]
	}
	users, err := e.userIDs(ctx, gid, g.Incarnation, idxs)
	if err != nil {
		return MemberPage{}, err
	}
	switch filter {
	case FilterRead:
		page.ReadUserIDList = users
		if e.cfg.readTimes {
			log, err := e.readLog(ctx, m)
			if err != nil {
				return MemberPage{}, err
			}
			if page.ReadTimes, err = readTimesOf(log, meta.TrackedAt, idxs, false); err != nil {
				return MemberPage{}, internalErr("decode read times", err)
			}
		}
	case FilterUnread:
		page.UnreadUserIDList = users
	case FilterDelivered:
		page.DeliveredUserIDList = users
	default:
		page.UndeliveredUserIDList = users
	}
	return page, nil
}

// readLog reads message m's read-time log (nil when it has none).
func (e *embedded) readLog(ctx context.Context, m *msgEntry) ([]byte, error) {
	if err := e.rlog.settleFor(ctx, m); err != nil {
		return nil, err
	}
	vals, err := e.st.Get(ctx, [][]byte{withSuffix([]byte(m.key), msgReadLog)})
	if err != nil {
		return nil, internalErr("read read times", err)
	}
	return decodeReadLog(vals[0])
}

// nextReaderChunk returns the first chunk from hi to last that may hold
// readers of message m (with delivered, readers or D): hi if it is loaded,
// else the next one stored (every committed receipt is stored).
func (e *embedded) nextReaderChunk(ctx context.Context, m *msgEntry, hi, last uint16, delivered bool) (uint16, bool, error) {
	m.mu.Lock()
	loaded := m.hasChunk(hi)
	if delivered {
		_, known := m.inModel(uint32(hi)<<chunkBits, false)
		loaded = loaded && known
	}
	m.mu.Unlock()
	if loaded {
		return hi, true, nil
	}
	prefix := []byte(m.key)
	next, found := last, false
	kinds := []byte{msgReaders}
	if delivered {
		kinds = append(kinds, msgDelivered)
	}
	for _, kind := range kinds {
		start := appendU16(withSuffix(prefix, kind), hi)
		end := prefixEnd(appendU16(withSuffix(prefix, kind), last))
		err := e.st.Scan(ctx, start, end, func(k, _ []byte) bool {
			if c := binary.BigEndian.Uint16(k[len(k)-2:]); !found || c < next {
				next, found = c, true
			}
			return false
		})
		if err != nil {
			return 0, false, internalErr("read readers", err)
		}
	}
	if !found {
		return 0, false, nil
	}
	return next, true, nil
}
