package readreceipt

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/readreceipt/readreceipt/store"
)

// GroupInfo describes a group as the engine sees it.
type GroupInfo struct {
	ID   string
	Type GroupType
	// Members is the number of current members.
	Members int
	// Version counts the membership changes since the group was created
	// (which is version 1).
	Version uint64
}

// loadGroup returns a copy of a group's meta, or nil if there is no such
// group. The caller holds the group's conversation lock, for reading or
// writing: the record cached here is only replaced under the write lock
// (groupCall).
func (e *embedded) loadGroup(ctx context.Context, gid string) (*groupRecord, error) {
	key := []byte(gid)
	if g, ok := e.groups.get(key); ok {
		cp := *g
		return &cp, nil
	}
	vals, err := e.st.Get(ctx, [][]byte{groupMetaKey(gid)})
	if err != nil {
		return nil, internalErr("read group", err)
	}
	if vals[0] == nil {
		return nil, nil
	}
	g, err := decodeGroup(vals[0])
	if err != nil {
		return nil, internalErr("decode group", err)
	}
	e.groups.add(key, &g, int64(len(gid))+128)
	cp := g
	return &cp, nil
}

// existingGroup is loadGroup for a group that must exist: a missing group
// is ErrGroupNotFound.
func (e *embedded) existingGroup(ctx context.Context, gid string) (*groupRecord, error) {
	g, err := e.loadGroup(ctx, gid)
	if err == nil && g == nil {
		err = errorf(ErrGroupNotFound, "%q", gid)
	}
	return g, err
}

func memberCacheKey(gid string, inc uint64, uid string) []byte {
	b := appendLP(make([]byte, 0, len(gid)+len(uid)+10), gid)
	return append(appendU64(b, inc), uid...)
}

// memberIndex returns the member index user uid has (or had) in a group.
func (e *embedded) memberIndex(ctx context.Context, gid string, inc uint64, uid string) (uint32, bool, error) {
	ck := memberCacheKey(gid, inc, uid)
	if idx, ok := e.indexes.get(ck); ok {
		return idx, true, nil
	}
	vals, err := e.st.Get(ctx, [][]byte{userKey(gid, uid)})
	if err != nil {
		return 0, false, internalErr("read member", err)
	}
	if vals[0] == nil {
		return 0, false, nil
	}
	idx, err := decodeIndex(vals[0])
	if err != nil {
		return 0, false, internalErr("decode member", err)
	}
	e.indexes.add(ck, idx, int64(len(ck))+48)
	return idx, true, nil
}

func encodeIndex(idx uint32) []byte { return binary.AppendUvarint(nil, uint64(idx)) }

func decodeIndex(b []byte) (uint32, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 || n != len(b) || v > math.MaxUint32 {
		return 0, errBadRecord
	}
	return uint32(v), nil
}

// nameBlockSize is how many consecutive member indexes share one entry of
// the user-ID cache (see nameBlock).
const nameBlockSize = 512

// nameBlock holds the user IDs of nameBlockSize consecutive member indexes
// of one group incarnation, packed in one string: the user of index
// first+i is data[offs[i]:offs[i+1]], empty where the index was not yet
// assigned when the block was read. An index, once assigned, names the same
// user for the group's life, so a block only ever gains users: a miss on an
// index below the group's next index reloads the block.
type nameBlock struct {
	data string
	offs []uint32
}

func (nb *nameBlock) user(i uint32) string { return nb.data[nb.offs[i]:nb.offs[i+1]] }

func (nb *nameBlock) size() int64 { return int64(len(nb.data)) + 4*int64(len(nb.offs)) + 96 }

func nameCacheKey(gid string, inc uint64, block uint32) []byte {
	b := appendLP(make([]byte, 0, len(gid)+14), gid)
	return appendU32(appendU64(b, inc), block)
}

// loadNameBlock reads the user IDs of one block of member indexes with one
// seek, and caches them.
func (e *embedded) loadNameBlock(ctx context.Context, gid string, inc uint64, block uint32) (*nameBlock, error) {
	first := block * nameBlockSize
	last := first + (nameBlockSize - 1)
	var data []byte
	nb := &nameBlock{offs: make([]uint32, nameBlockSize+1)}
	next := uint32(0) // the next slot whose start is not yet set
	err := e.st.Scan(ctx, indexKey(gid, first), prefixEnd(indexKey(gid, last)), func(k, v []byte) bool {
		i := binary.BigEndian.Uint32(k[len(k)-4:]) - first
		for ; next <= i; next++ {
			nb.offs[next] = uint32(len(data))
		}
		data = append(data, v...)
		return true
	})
	if err != nil {
		return nil, internalErr("read members", err)
	}
	for ; next <= nameBlockSize; next++ {
		nb.offs[next] = uint32(len(data))
	}
	nb.data = string(data)
	e.names.add(nameCacheKey(gid, inc, block), nb, nb.size())
	return nb, nil
}

// userIDs returns the user IDs of member indexes of a group incarnation.
// idxs must be ascending, as member pages are. User IDs are cached by
// blocks of consecutive indexes (nameBlock): a page of a group's members
// then costs a few cache lookups, and a cold page one seek per block.
func (e *embedded) userIDs(ctx context.Context, gid string, inc uint64, idxs []uint32) ([]string, error) {
	out := make([]string, len(idxs))
	var nb *nameBlock
	cur := uint32(math.MaxUint32)
	reloaded := false
	for i := 0; i < len(idxs); i++ {
		idx := idxs[i]
		if b := idx / nameBlockSize; b != cur || nb == nil {
			cur, reloaded = b, false
			var ok bool
			if nb, ok = e.names.get(nameCacheKey(gid, inc, b)); !ok {
				var err error
				if nb, err = e.loadNameBlock(ctx, gid, inc, b); err != nil {
					return nil, err
				}
				reloaded = true
			}
		}
		uid := nb.user(idx % nameBlockSize)
		if uid == "" {
			if reloaded {
				return nil, internalErr("read members", fmt.Errorf("member index %d of group %q has no user", idx, gid))
			}
			// Assigned after the block was cached: read it again.
			var err error
			if nb, err = e.loadNameBlock(ctx, gid, inc, cur); err != nil {
				return nil, err
			}
			reloaded = true
			i--
			continue
		}
		out[i] = uid
	}
	return out, nil
}

// checkMembers validates and de-duplicates a member list, keeping order.
func (e *Engine) checkMembers(members []string) ([]string, error) {
	seen := make(map[string]struct{}, len(members))
	out := make([]string, 0, len(members))
	for _, u := range members {
		if err := validID("user ID", u, e.cfg.maxIDLength); err != nil {
			return nil, err
		}
		if _, dup := seen[u]; dup {
			continue
		}
		seen[u] = struct{}{}
		out = append(out, u)
	}
	return out, nil
}

// groupCall runs fn, a membership call on group gid, once gid is valid.
func (e *Engine) groupCall(gid string, fn func() error) error {
	if err := e.enter(); err != nil {
		return err
	}
	defer e.leave()
	if err := validID("group ID", gid, e.cfg.maxIDLength); err != nil {
		return err
	}
	return fn()
}

// groupCall runs fn for group gid under its conversation's write lock.
func (e *embedded) groupCall(gid string, fn func(lockedGroup string) error) error {
	lock := e.convLock(convKey(Group(gid)))
	lock.Lock()
	defer lock.Unlock()
	// Whatever fn wrote, or failed to write, the cached record is stale.
	defer e.groups.remove([]byte(gid))
	return fn(gid)
}

// CreateGroup creates group gid of type typ with its first members (which
// may be none). Members are given their indexes in list order; repeated IDs
// count once. It fails with ErrGroupExists if the ID is in use. Membership
// calls work while the feature is switched off, and for every group type:
// WithGroupTypes only governs which groups' messages may ask for receipts.
func (e *Engine) CreateGroup(ctx context.Context, gid string, typ GroupType, members []string) error {
	if !typ.valid() {
		return errorf(ErrInvalidParameter, "unknown group type %d", typ)
	}
	members, err := e.checkMembers(members)
	if err != nil {
		return err
	}
	if uint64(len(members)) >= math.MaxUint32 {
		return errorf(ErrInvalidParameter, "%d members in one group", len(members))
	}
	return e.groupCall(gid, func() error { return e.be.createGroup(ctx, gid, typ, members) })
}

func (e *embedded) createGroup(ctx context.Context, gid string, typ GroupType, members []string) error {
	return e.groupCall(gid, func(gid string) error {
		g, err := e.loadGroup(ctx, gid)
		if err != nil {
			return err
		}
		if g != nil {
			return errorf(ErrGroupExists, "%q", gid)
		}
		var incb [8]byte
		if _, err := rand.Read(incb[:]); err != nil {
			return internalErr("create group", err)
		}
		rec := groupRecord{
			Type:        typ,
			Incarnation: binary.BigEndian.Uint64(incb[:]) | 1,
			Version:     1,
			NextIndex:   uint32(len(members)),
			Members:     uint32(len(members)),
			CreatedAt:   e.now(),
		}
		var b store.Batch
		for i, u := range members {
			b.Set(userKey(gid, u), encodeIndex(uint32(i)))
			b.Set(indexKey(gid, uint32(i)), []byte(u))
		}
		if len(members) > 0 {
			all := roaring.New()
			all.AddRange(0, uint64(len(members)))
			last, _ := lastChunk(rec.NextIndex)
			for hi := 0; hi <= int(last); hi++ {
				lo := uint64(hi) << chunkBits
				part := roaring.New()
				part.AddRange(lo, min(lo+1<<chunkBits, uint64(len(members))))
				v, err := store.EncodeSet(part)
				if err != nil {
					return internalErr("create group", err)
				}
				b.Set(chunkKey(gid, uint16(hi), rec.Version), v)
			}
		}
		b.Set(groupMetaKey(gid), rec.encode())
		return internalErr("create group", e.st.Write(ctx, &b, e.writeOpts()))
	})
}

// AddGroupMembers adds members to group gid. Members already in the group
// are skipped; a former member who rejoins gets back its old index. New
// members are not recipients of messages tracked before they joined.
func (e *Engine) AddGroupMembers(ctx context.Context, gid string, members []string) error {
	return e.changeMembers(ctx, gid, members, true)
}

// RemoveGroupMembers removes members from group gid. Users who are not
// members are skipped. A removed member stays a recipient of the messages
// tracked while it was a member, so their counts never move backwards.
func (e *Engine) RemoveGroupMembers(ctx context.Context, gid string, members []string) error {
	return e.changeMembers(ctx, gid, members, false)
}

func (e *Engine) changeMembers(ctx context.Context, gid string, members []string, add bool) error {
	members, err := e.checkMembers(members)
	if err != nil {
		return err
	}
	return e.groupCall(gid, func() error { return e.be.changeMembers(ctx, gid, members, add) })
}

func (e *embedded) changeMembers(ctx context.Context, gid string, members []string, add bool) error {
	return e.groupCall(gid, func(gid string) error {
		g, err := e.existingGroup(ctx, gid)
		if err != nil {
			return err
		}
		if len(members) == 0 {
			return nil
		}
		keys := make([][]byte, len(members))
		for i, u := range members {
			keys[i] = userKey(gid, u)
		}
		vals, err := e.st.Get(ctx, keys)
		if err != nil {
			return internalErr("read members", err)
		}
		var b store.Batch
		byChunk := make(map[uint16][]uint32)
		for i, u := range members {
			if vals[i] != nil {
				idx, err := decodeIndex(vals[i])
				if err != nil {
					return internalErr("decode member", err)
				}
				byChunk[chunkOf(idx)] = append(byChunk[chunkOf(idx)], idx)
				continue
			}
			if !add {
				continue // never a member
			}
			if g.NextIndex == math.MaxUint32 {
				return errorf(ErrInvalidParameter, "group %q has used every member index", gid)
			}
			idx := g.NextIndex
			g.NextIndex++
			b.Set(keys[i], encodeIndex(idx))
			b.Set(indexKey(gid, idx), []byte(u))
			byChunk[chunkOf(idx)] = append(byChunk[chunkOf(idx)], idx)
		}
		his := make([]uint16, 0, len(byChunk))
		for hi := range byChunk {
			his = append(his, hi)
		}
		slices.Sort(his)
		version := g.Version + 1
		changed := false
		for _, hi := range his {
			cur, curVersion, err := e.latestChunk(ctx, gid, hi)
			if err != nil {
				return err
			}
			n := cur.GetCardinality()
			if add {
				cur.AddMany(byChunk[hi])
			} else {
				for _, idx := range byChunk[hi] {
					cur.Remove(idx)
				}
			}
			delta := int64(cur.GetCardinality()) - int64(n)
			if delta == 0 {
				continue
			}
			changed = true
			g.Members = uint32(int64(g.Members) + delta)
			v, err := store.EncodeSet(cur)
			if err != nil {
				return internalErr("change members", err)
			}
			b.Set(chunkKey(gid, hi, version), v)
			// The chunk written before is needed only by messages tracked
			// since it was written; with none, drop it now.
			if curVersion != 0 {
				used, err := e.versionUsed(ctx, gid, curVersion, g.Version)
				if err != nil {
					return err
				}
				if !used {
					b.Delete(chunkKey(gid, hi, curVersion))
				}
			}
		}
		if !changed {
			return nil
		}
		g.Version = version
		b.Set(groupMetaKey(gid), g.encode())
		return internalErr("change members", e.st.Write(ctx, &b, e.writeOpts()))
	})
}

// versionUsed reports whether a live message of group gid was tracked at a
// membership version in [from, to].
func (e *embedded) versionUsed(ctx context.Context, gid string, from, to uint64) (bool, error) {
	prefix := groupKey(gid, groupVersion)
	used := false
	err := e.st.Scan(ctx, appendU64(slices.Clone(prefix), from), versionBound(prefix, to), func(k, v []byte) bool {
		used = true
		return false
	})
	if err != nil {
		return false, internalErr("read versions", err)
	}
	return used, nil
}

// versionBound is the end of the version keys at versions <= to.
func versionBound(prefix []byte, to uint64) []byte {
	if to == math.MaxUint64 {
		return prefixEnd(prefix)
	}
	return appendU64(slices.Clone(prefix), to+1)
}

// DismissGroup deletes group gid, its membership and the receipt state of
// all its messages, which answer ErrReceiptNotFound from then on. A group
// created later with the same ID starts afresh.
func (e *Engine) DismissGroup(ctx context.Context, gid string) error {
	return e.groupCall(gid, func() error { return e.be.dismissGroup(ctx, gid) })
}

func (e *embedded) dismissGroup(ctx context.Context, gid string) error {
	return e.groupCall(gid, func(gid string) error {
		if _, err := e.existingGroup(ctx, gid); err != nil {
			return err
		}
		// The write lock keeps receipts off the group; those still in the
		// log are folded before its messages' keys go.
		if err := e.rlog.settle(ctx); err != nil {
			return err
		}
		// The expiry keys of the group's messages lie outside its ranges;
		// find them through the version index before it goes.
		ck := convKey(Group(gid))
		var timeKeys [][]byte
		prefix := groupKey(gid, groupVersion)
		err := e.st.Scan(ctx, prefix, prefixEnd(prefix), func(k, v []byte) bool {
			msgID, _, perr := readLP(k[len(prefix)+8:])
			if perr == nil && len(v) == 8 {
				timeKeys = append(timeKeys, timeKey(int64(binary.BigEndian.Uint64(v)), ck, msgID))
			}
			return true
		})
		if err != nil {
			return internalErr("dismiss group", err)
		}
		var b store.Batch
		gp := groupPrefix(gid)
		b.DeleteRange(gp, prefixEnd(gp))
		mp := conversationMessagesPrefix(ck)
		b.DeleteRange(mp, prefixEnd(mp))
		// The group's orders and marks go with it: a group created again
		// under this ID starts with none.
		op := convOrderPrefix(ck)
		b.DeleteRange(op, prefixEnd(op))
		kp := convMarkPrefix(ck)
		b.DeleteRange(kp, prefixEnd(kp))
		b.Delete(gcKey(gid))
		const inline = 4096
		for len(timeKeys) > 0 && b.Len() < inline {
			b.Delete(timeKeys[0])
			timeKeys = timeKeys[1:]
		}
		if err := e.st.Write(ctx, &b, e.writeOpts()); err != nil {
			return internalErr("dismiss group", err)
		}
		// The group is gone. Left-over expiry keys are harmless (the sweep
		// drops keys whose message is gone), so clear them in slices.
		for len(timeKeys) > 0 {
			b.Reset()
			for len(timeKeys) > 0 && b.Len() < inline {
				b.Delete(timeKeys[0])
				timeKeys = timeKeys[1:]
			}
			if err := e.st.Write(ctx, &b, store.WriteOptions{}); err != nil {
				return internalErr("dismiss group", err)
			}
		}
		return nil
	})
}

// GetGroup returns what the engine knows of group gid, or ErrGroupNotFound.
func (e *Engine) GetGroup(ctx context.Context, gid string) (GroupInfo, error) {
	if err := e.enter(); err != nil {
		return GroupInfo{}, err
	}
	defer e.leave()
	if err := validID("group ID", gid, e.cfg.maxIDLength); err != nil {
		return GroupInfo{}, err
	}
	return e.be.getGroup(ctx, gid)
}

func (e *embedded) getGroup(ctx context.Context, gid string) (GroupInfo, error) {
	lock := e.convLock(convKey(Group(gid)))
	lock.RLock()
	defer lock.RUnlock()
	g, err := e.existingGroup(ctx, gid)
	if err != nil {
		return GroupInfo{}, err
	}
	return GroupInfo{ID: gid, Type: g.Type, Members: int(g.Members), Version: g.Version}, nil
}
