package readreceipt

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/readreceipt/readreceipt/internal/yield"
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
	g, ok, err := e.readGroup(ctx, gid)
	if err != nil || !ok {
		return nil, err
	}
	return &g, nil
}

// readGroup is loadGroup returning the record itself, for calls that keep
// it no longer than they run (a copy on the stack, not the heap).
func (e *embedded) readGroup(ctx context.Context, gid string) (groupRecord, bool, error) {
	key := []byte(gid)
	if g, ok := e.groups.get(key); ok {
		return *g, true, nil
	}
	vals, err := e.st.Get(ctx, [][]byte{groupMetaKey(gid)})
	if err != nil {
		return groupRecord{}, false, internalErr("read group", err)
	}
	if vals[0] == nil {
		return groupRecord{}, false, nil
	}
	g, err := decodeGroup(vals[0])
	if err != nil {
		return groupRecord{}, false, internalErr("decode group", err)
	}
	e.groups.add(key, &g, int64(len(gid))+128)
	return g, true, nil
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

// existingGroupRecord is readGroup for a group that must exist.
func (e *embedded) existingGroupRecord(ctx context.Context, gid string) (groupRecord, error) {
	g, ok, err := e.readGroup(ctx, gid)
	if err == nil && !ok {
		err = errorf(ErrGroupNotFound, "%q", gid)
	}
	return g, err
}

func memberCacheKey(gid string, inc uint64, uid string) []byte {
	return appendMemberCacheKey(make([]byte, 0, len(gid)+len(uid)+9), gid, inc, uid)
}

func appendMemberCacheKey(b []byte, gid string, inc uint64, uid string) []byte {
	return append(appendU64(appendLP(b, gid), inc), uid...)
}

// memberIndex returns the member index user uid has (or had) in a group.
func (e *embedded) memberIndex(ctx context.Context, gid string, inc uint64, uid string) (uint32, bool, error) {
	// The cache copies the key it keeps: the lookup's can be on the stack.
	var buf [96]byte
	ck := appendMemberCacheKey(buf[:0], gid, inc, uid)
	if idx, ok := e.indexes.get(ck); ok {
		return idx, true, nil
	}
	vals, err := e.st.Get(ctx, [][]byte{bucketKey(gid, memberBucket(uid))})
	if err != nil {
		return 0, false, internalErr("read member", err)
	}
	idx, ok, err := bucketFind(vals[0], uid)
	if err != nil {
		return 0, false, internalErr("decode member", err)
	}
	if !ok {
		return 0, false, nil
	}
	e.indexes.add(ck, idx, int64(len(ck))+48)
	return idx, true, nil
}

// memberBuckets is how many keys a group's user -> index lookups are spread
// over (see memberBucket). A group of a million members has about 15 users
// in a bucket; a group of 10 members, 10 buckets of one user.
const memberBuckets = 1 << 16

// memberBucket is the lookup bucket of user uid: the top 16 bits of its
// memberHash. Stored data depends on it: changing it needs a new schema
// version.
func memberBucket(uid string) uint16 { return uint16(memberHash(uid) >> 48) }

// memberHash is a 64-bit FNV-1a hash of a user ID, mixed (FNV-1a alone
// barely moves its top bits for IDs that differ in their last byte).
func memberHash(uid string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(uid); i++ {
		h ^= uint64(uid[i])
		h *= 1099511628211
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// appendBucketEntry appends the lookup entry of user uid at index idx to a
// bucket's value.
func appendBucketEntry(b []byte, uid string, idx uint32) []byte {
	return binary.AppendUvarint(appendLP(b, uid), uint64(idx))
}

// walkBucket calls fn for each entry of a bucket's value, in order, until
// fn returns false.
func walkBucket(v []byte, fn func(uid []byte, idx uint32) bool) error {
	for len(v) > 0 {
		n := 1 + int(v[0])
		if len(v) < n {
			return errBadRecord
		}
		idx, m := binary.Uvarint(v[n:])
		if m <= 0 || idx > math.MaxUint32 {
			return errBadRecord
		}
		if !fn(v[1:n], uint32(idx)) {
			return nil
		}
		v = v[n+m:]
	}
	return nil
}

// bucketFind returns the index of user uid in a bucket's value.
func bucketFind(v []byte, uid string) (idx uint32, ok bool, err error) {
	err = walkBucket(v, func(u []byte, i uint32) bool {
		if string(u) == uid {
			idx, ok = i, true
		}
		return !ok
	})
	return idx, ok, err
}

// nameBlockSize is how many consecutive member indexes share one names key
// and one entry of the user-ID cache (see nameBlock).
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

// decodeNameBlock reads a names key's value: lp(user) per index.
func decodeNameBlock(v []byte) (*nameBlock, error) {
	nb := &nameBlock{offs: make([]uint32, nameBlockSize+1)}
	data := make([]byte, 0, len(v))
	i := 0
	for ; len(v) > 0; i++ {
		n := 1 + int(v[0])
		if i == nameBlockSize || len(v) < n || n == 1 {
			return nil, errBadRecord
		}
		nb.offs[i] = uint32(len(data))
		data = append(data, v[1:n]...)
		v = v[n:]
	}
	for ; i <= nameBlockSize; i++ {
		nb.offs[i] = uint32(len(data))
	}
	nb.data = string(data)
	return nb, nil
}

// namesPrefix returns the first n entries of a names key's value.
func namesPrefix(v []byte, n uint32) ([]byte, error) {
	off := 0
	for range n {
		if off >= len(v) || off+1+int(v[off]) > len(v) {
			return nil, errBadRecord
		}
		off += 1 + int(v[off])
	}
	return v[:off], nil
}

func nameCacheKey(gid string, inc uint64, block uint32) []byte {
	b := appendLP(make([]byte, 0, len(gid)+14), gid)
	return appendU32(appendU64(b, inc), block)
}

// loadNameBlock reads the user IDs of one block of member indexes with one
// point lookup, and caches them.
func (e *embedded) loadNameBlock(ctx context.Context, gid string, inc uint64, block uint32) (*nameBlock, error) {
	vals, err := e.st.Get(ctx, [][]byte{namesKey(gid, block)})
	if err != nil {
		return nil, internalErr("read members", err)
	}
	nb, err := decodeNameBlock(vals[0])
	if err != nil {
		return nil, internalErr("decode members", err)
	}
	e.names.add(nameCacheKey(gid, inc, block), nb, nb.size())
	return nb, nil
}

// putNewMembers adds to b the keys that give users[i] the member index
// first+i, first being the group's next index: the lookup buckets the users
// fall in (bkts[i] is memberBucket(users[i])), then the names blocks from
// first's on, each in ascending key order. head is the stored value of
// first's names block when first is not the start of one; stored returns a
// bucket's stored value (nil for none). The values are cut from a few large
// buffers.
func putNewMembers(b *store.Batch, gid string, first uint32, users []string, bkts []uint16, head []byte, stored func(uint16) []byte) error {
	if len(users) == 0 {
		return nil
	}
	if first%nameBlockSize == 0 {
		head = nil
	}
	head, err := namesPrefix(head, first%nameBlockSize)
	if err != nil {
		return err
	}
	if len(users) <= 1024 {
		vals := make(map[uint16][]byte, len(users))
		for i, u := range users {
			v, ok := vals[bkts[i]]
			if !ok {
				v = slices.Clip(stored(bkts[i]))
			}
			vals[bkts[i]] = appendBucketEntry(v, u, first+uint32(i))
		}
		bks := make([]uint16, 0, len(vals))
		for bk := range vals {
			bks = append(bks, bk)
		}
		slices.Sort(bks)
		for _, bk := range bks {
			b.Set(bucketKey(gid, bk), vals[bk])
		}
	} else {
		putBuckets(b, gid, first, users, bkts, stored)
	}
	size := len(head)
	for _, u := range users {
		size += 1 + len(u)
	}
	names := append(make([]byte, 0, size), head...)
	block, start := first/nameBlockSize, 0
	var y yield.Yielder
	for i, u := range users {
		y.Tick()
		if i > 0 && (first+uint32(i))%nameBlockSize == 0 {
			b.Set(namesKey(gid, block), names[start:len(names):len(names)])
			block, start = block+1, len(names)
		}
		names = appendLP(names, u)
	}
	b.Set(namesKey(gid, block), names[start:])
	return nil
}

// putBuckets is putNewMembers' lookup buckets for many users: every
// touched bucket is laid out in one buffer, stored entries first, then
// the new ones in index order. Entries are placed in two passes, as a
// radix sort by bucket: the first copies them, in users' order, into 256
// runs by the bucket's high byte, the second moves each run into its 256
// buckets. Scattered straight into 65,536 buckets across a buffer of
// ~16 MB (a million members), nearly every entry's write missed the CPU
// caches (putBuckets was 123 ms of a 337 ms create in a profile); the
// first pass writes 256 sequential streams and the second a region of
// about 1/256 of the buffer at a time.
func putBuckets(b *store.Batch, gid string, first uint32, users []string, bkts []uint16, stored func(uint16) []byte) {
	const runs = 256
	offs := make([]int, memberBuckets+1)
	seen := make([]bool, memberBuckets)
	var run [runs + 1]int // where each run starts in tmp
	nb := 0               // buckets touched
	var y yield.Yielder
	for i, u := range users {
		y.Tick()
		bk := bkts[i]
		if !seen[bk] {
			seen[bk] = true
			nb++
			offs[int(bk)+1] += len(stored(bk))
		}
		n := 1 + len(u) + uvarintLen(uint64(first)+uint64(i))
		offs[int(bk)+1] += n
		run[int(bk>>8)+1] += 1 + n // and the bucket's low byte
	}
	for i := 1; i <= memberBuckets; i++ {
		offs[i] += offs[i-1]
	}
	for i := 1; i <= runs; i++ {
		run[i] += run[i-1]
	}
	tmp := make([]byte, run[runs])
	at := run
	for i, u := range users {
		y.Tick()
		bk := bkts[i]
		p := at[bk>>8]
		tmp[p] = byte(bk)
		tmp[p+1] = byte(len(u))
		p += 2 + copy(tmp[p+2:], u)
		p += binary.PutUvarint(tmp[p:], uint64(first)+uint64(i))
		at[bk>>8] = p
	}
	buf := make([]byte, offs[memberBuckets])
	pos := slices.Clone(offs[:memberBuckets])
	for bk := range memberBuckets {
		y.Tick()
		if seen[bk] {
			pos[bk] += copy(buf[pos[bk]:], stored(uint16(bk)))
		}
	}
	for r := range runs {
		for p := run[r]; p < run[r+1]; {
			y.Tick()
			bk := r<<8 | int(tmp[p])
			e := p + 2 + int(tmp[p+1]) // the index's varint starts here
			for tmp[e] >= 0x80 {
				e++
			}
			e++
			pos[bk] += copy(buf[pos[bk]:], tmp[p+1:e])
			p = e
		}
	}
	// The keys, cut from one buffer: one allocation where bucketKey makes
	// two or three for each of up to 65,536.
	prefix := groupKey(gid, groupBucket)
	kl := len(prefix) + 2
	keys := make([]byte, 0, nb*kl)
	b.Grow(nb)
	for bk := range memberBuckets {
		y.Tick()
		if seen[bk] {
			keys = appendU16(append(keys, prefix...), uint16(bk))
			b.Set(keys[len(keys)-kl:len(keys):len(keys)], buf[offs[bk]:offs[bk+1]:offs[bk+1]])
		}
	}
}

func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
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

// checkMembers validates and de-duplicates a member list, keeping order,
// and returns the memberBucket of each member kept (see uniqueMembers).
func (e *Engine) checkMembers(members []string) ([]string, []uint16, error) {
	var y yield.Yielder
	for _, u := range members {
		y.Tick()
		if err := validID("user ID", u, e.cfg.maxIDLength); err != nil {
			return nil, nil, err
		}
	}
	out, bkts := uniqueMembers(members)
	return out, bkts, nil
}

// uniqueMembers returns ids without repeats, keeping the first of each in
// order (ids itself when it has none), and the memberBucket of each ID it
// returns: the duplicate check hashes every ID with memberHash, whose top
// bits are the bucket, so the embedded backend need not hash them again
// (13 ms of a million-member create). A Go map of a million strings costs
// about 100 ns an ID in cache misses; a long list is instead radix-sorted
// by the top 32 bits of memberHash, four streaming passes that keep ties
// in list order (three passes of 11 bits were slower: 37 -> 54 ms a
// million), and only IDs whose hashes tie are compared.
func uniqueMembers(ids []string) ([]string, []uint16) {
	bkts := make([]uint16, len(ids))
	if len(ids) <= 1024 {
		seen := make(map[string]struct{}, len(ids))
		out := make([]string, 0, len(ids))
		for _, u := range ids {
			if _, dup := seen[u]; !dup {
				seen[u] = struct{}{}
				bkts[len(out)] = memberBucket(u)
				out = append(out, u)
			}
		}
		return out, bkts[:len(out)]
	}
	type hashed struct {
		h uint32
		i uint32
	}
	var y yield.Yielder
	a := make([]hashed, len(ids))
	for i, u := range ids {
		y.Tick()
		h := uint32(memberHash(u) >> 32)
		a[i] = hashed{h, uint32(i)}
		bkts[i] = uint16(h >> 16) // memberBucket
	}
	tmp := make([]hashed, len(ids))
	// The passes tick once per block: a tick per entry would cost about
	// as much as the pass.
	const block = 4096
	for shift := 0; shift < 32; shift += 8 {
		var starts [257]int
		for c := range slices.Chunk(a, block) {
			y.TickN(len(c))
			for _, x := range c {
				starts[(x.h>>shift)&0xff+1]++
			}
		}
		for i := 1; i <= 256; i++ {
			starts[i] += starts[i-1]
		}
		for c := range slices.Chunk(a, block) {
			y.TickN(len(c))
			for _, x := range c {
				d := (x.h >> shift) & 0xff
				tmp[starts[d]] = x
				starts[d]++
			}
		}
		a, tmp = tmp, a
	}
	var dup []bool
	for lo := 0; lo < len(a); {
		y.Tick()
		hi := lo + 1
		for hi < len(a) && a[hi].h == a[lo].h {
			hi++
		}
		if hi-lo > 1 {
			dup = markDups(dup, ids, a[lo:hi], func(x hashed) uint32 { return x.i })
		}
		lo = hi
	}
	if dup == nil {
		return ids, bkts
	}
	out := make([]string, 0, len(ids))
	for i, u := range ids {
		y.Tick()
		if !dup[i] {
			bkts[len(out)] = bkts[i]
			out = append(out, u)
		}
	}
	return out, bkts[:len(out)]
}

// markDups marks in dup (made on first need) each ID of a run of IDs whose
// hashes tie that repeats an earlier one of the run. The run is in list
// order.
func markDups[T any](dup []bool, ids []string, run []T, index func(T) uint32) []bool {
	seen := make(map[string]struct{}, len(run))
	for _, x := range run {
		i := index(x)
		if _, d := seen[ids[i]]; d {
			if dup == nil {
				dup = make([]bool, len(ids))
			}
			dup[i] = true
		}
		seen[ids[i]] = struct{}{}
	}
	return dup
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
	members, bkts, err := e.checkMembers(members)
	if err != nil {
		return err
	}
	if uint64(len(members)) >= math.MaxUint32 {
		return errorf(ErrInvalidParameter, "%d members in one group", len(members))
	}
	return e.groupCall(gid, func() error { return e.be.createGroup(ctx, gid, typ, members, bkts) })
}

func (e *embedded) createGroup(ctx context.Context, gid string, typ GroupType, members []string, bkts []uint16) error {
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
		// Keys in ascending order (meta, chunks, buckets, names): Pebble
		// sorts a large batch before it can flush it, which costs little
		// on a sorted one.
		var b store.Batch
		b.Set(groupMetaKey(gid), rec.encode())
		if len(members) > 0 {
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
		if err := putNewMembers(&b, gid, 0, members, bkts, nil, func(uint16) []byte { return nil }); err != nil {
			return internalErr("create group", err)
		}
		return internalErr("create group", e.writeMembership(ctx, &b))
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
	members, bkts, err := e.checkMembers(members)
	if err != nil {
		return err
	}
	return e.groupCall(gid, func() error { return e.be.changeMembers(ctx, gid, members, bkts, add) })
}

func (e *embedded) changeMembers(ctx context.Context, gid string, members []string, bkts []uint16, add bool) error {
	return e.groupCall(gid, func(gid string) error {
		g, err := e.existingGroup(ctx, gid)
		if err != nil {
			return err
		}
		if len(members) == 0 {
			return nil
		}
		stored, err := e.loadBuckets(ctx, gid, bkts)
		if err != nil {
			return err
		}
		// b gets the meta and the chunks, mb the keys of new members, which
		// sort after them: Pebble sorts a large batch before it can flush
		// it, which costs little on a sorted one.
		var b, mb store.Batch
		byChunk := make(map[uint16][]uint32)
		var y yield.Yielder
		var found []int // where in members the users who are members already are
		for i, u := range members {
			y.Tick()
			v := stored.get(bkts[i])
			if v == nil {
				continue // a bucket nobody is in
			}
			idx, ok, err := bucketFind(v, u)
			if err != nil {
				return internalErr("decode member", err)
			}
			if ok {
				found = append(found, i)
				byChunk[chunkOf(idx)] = append(byChunk[chunkOf(idx)], idx)
			}
		}
		// The users who join, in the order given: when none is a member
		// already, as a million new ones into a small group are, the
		// lists themselves, not copies (18 MB at a million).
		var joined []string
		var joinedBkts []uint16
		if add {
			joined, joinedBkts = members, bkts
			if len(found) > 0 {
				joined, joinedBkts = make([]string, 0, len(members)-len(found)), make([]uint16, 0, len(members)-len(found))
				next := 0
				for i := range members {
					y.Tick()
					if next < len(found) && found[next] == i {
						next++
						continue
					}
					joined, joinedBkts = append(joined, members[i]), append(joinedBkts, bkts[i])
				}
			}
			if len(joined) > 0 && uint64(g.NextIndex)+uint64(len(joined))-1 >= math.MaxUint32 {
				return errorf(ErrInvalidParameter, "group %q has used every member index", gid)
			}
		}
		// The new members take the indexes [newLo, newHi): whole ranges of
		// the chunks they fall in.
		newLo := uint64(g.NextIndex)
		newHi := newLo + uint64(len(joined))
		for idx := newLo; idx < newHi; idx = (idx>>chunkBits + 1) << chunkBits {
			if _, ok := byChunk[chunkOf(uint32(idx))]; !ok {
				byChunk[chunkOf(uint32(idx))] = nil
			}
		}
		if len(joined) > 0 {
			var head []byte
			if g.NextIndex%nameBlockSize != 0 {
				vals, err := e.st.Get(ctx, [][]byte{namesKey(gid, g.NextIndex/nameBlockSize)})
				if err != nil {
					return internalErr("read members", err)
				}
				head = vals[0]
			}
			if err := putNewMembers(&mb, gid, g.NextIndex, joined, joinedBkts, head, stored.get); err != nil {
				return internalErr("decode members", err)
			}
			g.NextIndex += uint32(len(joined))
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
				lo := uint64(hi) << chunkBits
				if lo, end := max(lo, newLo), min(lo+1<<chunkBits, newHi); lo < end {
					cur.AddRange(lo, end)
				}
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
		var all store.Batch
		all.Grow(1 + b.Len() + mb.Len())
		all.Set(groupMetaKey(gid), g.encode())
		for _, bt := range []*store.Batch{&b, &mb} {
			for _, op := range bt.Ops() {
				y.Tick()
				if op.Kind == store.OpDelete {
					all.Delete(op.Key)
				} else {
					all.Set(op.Key, op.Value)
				}
			}
		}
		return internalErr("change members", e.writeMembership(ctx, &all))
	})
}

// bucketSet is the stored values of some of a group's lookup buckets: a
// map for a few, a slice of every bucket for many.
type bucketSet struct {
	sparse map[uint16][]byte
	dense  [][]byte
	// stored[bk] tells whether dense[bk] is stored: at 64 KiB it stays in
	// cache where dense (1.5 MiB) does not, and most buckets of a group
	// that is growing from few members are empty.
	stored []bool
}

func (s *bucketSet) get(bk uint16) []byte {
	if s.dense != nil {
		if !s.stored[bk] {
			return nil
		}
		return s.dense[bk]
	}
	return s.sparse[bk]
}

// loadBuckets reads the lookup buckets bkts (the users' memberBuckets,
// repeats allowed). A few buckets are read with one point lookup each,
// many with one scan of all of the group's buckets.
func (e *embedded) loadBuckets(ctx context.Context, gid string, bkts []uint16) (*bucketSet, error) {
	var y yield.Yielder
	if len(bkts) > memberBuckets/64 {
		set := &bucketSet{dense: make([][]byte, memberBuckets), stored: make([]bool, memberBuckets)}
		want := make([]bool, memberBuckets)
		for _, bk := range bkts {
			y.Tick()
			want[bk] = true
		}
		prefix := groupKey(gid, groupBucket)
		err := e.st.Scan(ctx, prefix, prefixEnd(prefix), func(k, v []byte) bool {
			y.Tick()
			if len(k) == len(prefix)+2 {
				if bk := binary.BigEndian.Uint16(k[len(prefix):]); want[bk] {
					set.dense[bk], set.stored[bk] = slices.Clone(v), true
				}
			}
			return true
		})
		if err != nil {
			return nil, internalErr("read members", err)
		}
		return set, nil
	}
	set := &bucketSet{sparse: make(map[uint16][]byte, len(bkts))}
	keys := make([][]byte, 0, len(bkts))
	order := make([]uint16, 0, len(bkts))
	for _, bk := range bkts {
		if _, ok := set.sparse[bk]; !ok {
			set.sparse[bk] = nil
			keys = append(keys, bucketKey(gid, bk))
			order = append(order, bk)
		}
	}
	vals, err := e.st.Get(ctx, keys)
	if err != nil {
		return nil, internalErr("read members", err)
	}
	for i, v := range vals {
		set.sparse[order[i]] = v
	}
	return set, nil
}

// versionUsed reports whether a live message of group gid was tracked at a
// membership version in [from, to].
func (e *embedded) versionUsed(ctx context.Context, gid string, from, to uint64) (bool, error) {
	prefix := groupKey(gid, groupVersion)
	used := false
	err := e.st.Scan(ctx, appendU64(slices.Clone(prefix), from), versionBound(prefix, to), func(k, v []byte) bool {
		// A counter the sweep has not dropped yet may be zero.
		n, derr := store.DecodeCounter(v)
		used = derr != nil || n != 0
		return !used
	})
	if err != nil {
		return false, internalErr("read versions", err)
	}
	return used, nil
}

// versionBound is the end of the version counters at versions <= to.
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
		// find them through the messages' metas before they go.
		ck := convKey(Group(gid))
		var timeKeys [][]byte
		mp := conversationMessagesPrefix(ck)
		err := e.st.Scan(ctx, mp, prefixEnd(mp), func(k, v []byte) bool {
			msgID, rest, perr := readLP(k[len(mp):])
			if perr != nil || len(rest) != 1 || rest[0] != msgMeta {
				return true // another key of the message
			}
			if meta, derr := decodeMessage(v); derr == nil {
				timeKeys = append(timeKeys, timeKey(meta.TrackedAt, ck, msgID))
			}
			return true
		})
		if err != nil {
			return internalErr("dismiss group", err)
		}
		var b store.Batch
		gp := groupPrefix(gid)
		b.DeleteRange(gp, prefixEnd(gp))
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
