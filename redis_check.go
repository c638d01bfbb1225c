package readreceipt

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/redis/go-redis/v9"
)

// check verifies, for Engine.Check, the invariants of everything the
// engine's prefix holds in Redis: the same ones as the embedded backend's
// (see Engine.Check), on the Redis layout (redis.go). It reads every key,
// takes no lock and expects no writes meanwhile: it is for tests.
func (b *redisBackend) check(ctx context.Context) error {
	keys, err := b.allKeys(ctx)
	if err != nil {
		return err
	}
	c := redisChecker{b: b, ctx: ctx}
	bases := map[string]map[string]bool{} // base -> suffixes
	for _, k := range keys {
		if k == b.p+"secret" || b.isPrivacyKey(k) {
			continue
		}
		base, suffix, ok := splitRedisKey(b.p, k)
		if !ok {
			c.errorf("key %q is not the engine's", k)
			continue
		}
		if bases[base] == nil {
			bases[base] = map[string]bool{}
		}
		bases[base][suffix] = true
	}
	names := make([]string, 0, len(bases))
	for base := range bases {
		names = append(names, base)
	}
	sort.Strings(names)
	for _, base := range names {
		c.conversation(base, bases[base])
		if len(c.errs) > 10 {
			break
		}
	}
	if len(c.errs) > 0 {
		return errorf(ErrInternal, "check: %s", strings.Join(c.errs, "; "))
	}
	return nil
}

// allKeys returns every key under the engine's prefix, from every master.
func (b *redisBackend) allKeys(ctx context.Context) ([]string, error) {
	var mu sync.Mutex
	var out []string
	scan := func(ctx context.Context, c *redis.Client) error {
		it := c.Scan(ctx, 0, redisGlob(b.p)+"*", 1000).Iterator()
		for it.Next(ctx) {
			mu.Lock()
			out = append(out, it.Val())
			mu.Unlock()
		}
		return it.Err()
	}
	var err error
	switch c := b.c.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, scan)
	case *redis.Client:
		err = scan(ctx, c)
	default:
		err = fmt.Errorf("unsupported Redis client %T", b.c)
	}
	if err != nil {
		return nil, b.fail("check", err)
	}
	sort.Strings(out)
	return out, nil
}

// redisGlob escapes s for a SCAN pattern.
func redisGlob(s string) string {
	var sb strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]\`, r) {
			sb.WriteByte('\\')
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// splitRedisKey splits a key into its conversation base (through the hash
// tag's closing brace, found by reading the tag's lengths) and the rest.
func splitRedisKey(prefix, k string) (base, suffix string, ok bool) {
	rest, ok := strings.CutPrefix(k, prefix+"{")
	if !ok || len(rest) < 2 {
		return "", "", false
	}
	kind, rest := rest[0], rest[1:]
	n := 1
	if kind == 'c' {
		n = 2
	} else if kind != 'g' {
		return "", "", false
	}
	for range n {
		l, r, ok := strings.Cut(rest, ":")
		size, err := strconv.Atoi(l)
		if !ok || err != nil || size < 0 || size > len(r) {
			return "", "", false
		}
		rest = r[size:]
	}
	suffix, ok = strings.CutPrefix(rest, "}")
	if !ok {
		return "", "", false
	}
	return k[:len(k)-len(suffix)], suffix, true
}

type redisChecker struct {
	b    *redisBackend
	ctx  context.Context
	errs []string
}

func (c *redisChecker) errorf(format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf(format, args...))
}

// bitmapOf reads a Redis bitmap key as a set of member indexes from base.
func (c *redisChecker) bitmapOf(key string, base uint32) *roaring.Bitmap {
	s, err := c.b.c.Get(c.ctx, key).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		c.errorf("read %q: %v", key, err)
	}
	return bitsToBitmap(s, base)
}

func (c *redisChecker) conversation(base string, suffixes map[string]bool) {
	ctx, r := c.ctx, c.b.c
	isGroup := strings.HasPrefix(base[len(c.b.p)+1:], "g")
	var g *groupRecord
	var users map[string]string
	chunkAt := func(hi uint16, version uint64) *roaring.Bitmap {
		vs, err := r.ZRevRangeByScore(ctx, base+"C"+strconv.Itoa(int(hi)), &redis.ZRangeBy{Max: strconv.FormatUint(version, 10), Min: "-inf", Count: 1}).Result()
		if err != nil || len(vs) == 0 {
			return roaring.New()
		}
		return c.bitmapOf(base+"C"+strconv.Itoa(int(hi))+":"+vs[0], uint32(hi)<<chunkBits)
	}
	if isGroup && suffixes["G"] {
		vals, err := r.HGetAll(ctx, base+"G").Result()
		if err != nil {
			c.errorf("%s: %v", base, err)
			return
		}
		if s := vals["s"]; s != "" {
			c.errorf("%s: group left in state %q", base, s)
			return
		}
		num := func(f string) uint64 { n, _ := strconv.ParseUint(vals[f], 10, 64); return n }
		g = &groupRecord{Type: GroupType(num("t")), Incarnation: num("i"), Version: num("v"), NextIndex: uint32(num("n")), Members: uint32(num("m"))}
		users, _ = r.HGetAll(ctx, base+"U").Result()
		names, _ := r.HGetAll(ctx, base+"I").Result()
		if len(users) != len(names) || uint32(len(users)) != g.NextIndex {
			c.errorf("%s: %d users, %d indexes, next index %d", base, len(users), len(names), g.NextIndex)
		}
		for u, idx := range users {
			if names[idx] != u {
				c.errorf("%s: user %q has index %s, which names %q", base, u, idx, names[idx])
			}
		}
		var members uint64
		if last, ok := lastChunk(g.NextIndex); ok {
			for hi := 0; hi <= int(last); hi++ {
				members += chunkAt(uint16(hi), g.Version).GetCardinality()
			}
		}
		if members != uint64(g.Members) {
			c.errorf("%s: %d members counted, %d recorded", base, members, g.Members)
		}
	}
	listed := map[string]bool{}
	if isGroup {
		ids, _ := r.SMembers(ctx, base+"X").Result()
		for _, id := range ids {
			listed[id] = true
		}
	}
	readerKeys := map[string][]string{} // message suffix -> its reader chunk suffixes
	sparse := map[string]string{}       // message suffix -> its sparse readers suffix
	model := map[string]*modelKeys{}    // message suffix -> its D, P and log keys
	for s := range suffixes {
		if k := s[0]; k == 'D' || k == 'P' || k == 'L' {
			id, rest, ok := cutLP(s[1:])
			if !ok || k == 'L' && rest != "" {
				c.errorf("%s: bad key suffix %q", base, s)
				continue
			}
			ms := "M" + redisLP(id)
			mk := model[ms]
			if mk == nil {
				mk = &modelKeys{dense: map[byte][]string{}, sparse: map[byte]string{}}
				model[ms] = mk
			}
			switch {
			case k == 'L':
				mk.log = s
			case rest == "":
				mk.sparse[k] = s
			default:
				if _, err := strconv.Atoi(strings.TrimPrefix(rest, ":")); err != nil || rest[0] != ':' {
					c.errorf("%s: bad key suffix %q", base, s)
					continue
				}
				mk.dense[k] = append(mk.dense[k], s)
			}
			if !suffixes[ms] {
				c.errorf("%s: key %q of no message", base, s)
			}
		}
		if strings.HasPrefix(s, "S") {
			sparse["M"+s[1:]] = s
		}
		if strings.HasPrefix(s, "R") {
			id, _, ok := cutLP(s[1:])
			if !ok {
				c.errorf("%s: bad key suffix %q", base, s)
				continue
			}
			readerKeys["M"+redisLP(id)] = append(readerKeys["M"+redisLP(id)], s)
		}
	}
	for s := range suffixes {
		switch {
		case s == "G" || s == "U" || s == "I" || s == "X" || strings.HasPrefix(s, "C"):
			if !isGroup || g == nil {
				c.errorf("%s: group key %q without a group", base, s)
			}
		case strings.HasPrefix(s, "R"):
			if !suffixes["M"+s[1:strings.LastIndexByte(s, ':')]] {
				c.errorf("%s: readers %q of no message", base, s)
			}
		case strings.HasPrefix(s, "S"):
			if !suffixes["M"+s[1:]] {
				c.errorf("%s: readers %q of no message", base, s)
			}
		case strings.HasPrefix(s, "D") || strings.HasPrefix(s, "P") || strings.HasPrefix(s, "L"):
			// Checked with their message.
		case strings.HasPrefix(s, "M"):
			mk := model[s]
			if mk == nil {
				mk = &modelKeys{}
			}
			c.message(base, s, g, listed, readerKeys[s], sparse[s], mk, chunkAt)
		case strings.HasPrefix(s, "O") || s == "K":
			// Orders and marks: c.orders (redis_order.go).
		default:
			c.errorf("%s: unknown key suffix %q", base, s)
		}
	}
	c.orders(base, suffixes, isGroup, g)
}

// cutLP reads "<len>:<s>" from the front of v.
func cutLP(v string) (string, string, bool) {
	l, r, ok := strings.Cut(v, ":")
	n, err := strconv.Atoi(l)
	if !ok || err != nil || n < 0 || n > len(r) {
		return "", "", false
	}
	return r[:n], r[n:], true
}

// modelKeys are a message's keys of D and P (sparse and dense forms, by
// set letter) and its read-time log.
type modelKeys struct {
	dense  map[byte][]string
	sparse map[byte]string
	log    string
}

func (c *redisChecker) message(base, s string, g *groupRecord, listed map[string]bool, readers []string, sparse string, mk *modelKeys, chunkAt func(uint16, uint64) *roaring.Bitmap) {
	ctx, r := c.ctx, c.b.c
	id, rest, ok := cutLP(s[1:])
	if !ok || rest != "" {
		c.errorf("%s: bad key suffix %q", base, s)
		return
	}
	vals, err := r.HGetAll(ctx, base+s).Result()
	if err != nil {
		c.errorf("%s: %v", base+s, err)
		return
	}
	if len(vals) == 0 {
		// Expired by Redis since the scan listed it: its other keys
		// expire with it, nothing is left to check.
		return
	}
	meta, err := decodeRedisMeta(vals["h"])
	if err != nil {
		c.errorf("%s: bad meta", base+s)
		return
	}
	count, _ := strconv.ParseInt(vals["n"], 10, 64)
	isGroup := strings.HasPrefix(base[len(c.b.p)+1:], "g")
	if !isGroup {
		if count != 0 && count != 1 || meta.Recipients != 1 || len(readers) != 0 {
			c.errorf("%s: C2C message with count %d, %d recipients, %d reader keys", base+s, count, meta.Recipients, len(readers))
		}
		rs := roaring.New()
		if count == 1 {
			rs.Add(0)
		}
		recipients := roaring.BitmapOf(0)
		c.model(base, s, vals, rs, recipients, mk, meta)
		return
	}
	if g == nil || g.Incarnation != meta.Incarnation {
		c.errorf("%s: message of a group that is gone", base+s)
		return
	}
	if !listed[id] {
		c.errorf("%s: message not in the group's list", base+s)
	}
	got := roaring.New()
	for _, rs := range readers {
		hi, err := strconv.Atoi(rs[strings.LastIndexByte(rs, ':')+1:])
		if err != nil {
			c.errorf("%s: bad key suffix %q", base, rs)
			continue
		}
		got.Or(c.bitmapOf(base+rs, uint32(hi)<<chunkBits))
	}
	if r, ok := vals["r"]; ok {
		if len(readers) > 0 || sparse != "" || meta.EndIndex > 512 {
			c.errorf("%s: inline readers besides others, or for %d indexes", base+s, meta.EndIndex)
		}
		got.Or(bitsToBitmap(r, 0))
	}
	if sparse != "" {
		if len(readers) > 0 {
			c.errorf("%s: readers in both forms", base+s)
		}
		ms, err := r.SMembers(ctx, base+sparse).Result()
		if err != nil {
			c.errorf("%s: %v", base+sparse, err)
		}
		for _, m := range ms {
			n, err := strconv.ParseUint(m, 10, 32)
			if err != nil {
				c.errorf("%s: bad reader %q", base+sparse, m)
			}
			got.Add(uint32(n))
		}
		if limit, _ := strconv.ParseInt(vals["sp"], 10, 64); count >= limit {
			c.errorf("%s: sparse readers with count %d, limit %q", base+s, count, vals["sp"])
		}
	}
	if int64(got.GetCardinality()) != count {
		c.errorf("%s: %d readers, count %d", base+s, got.GetCardinality(), count)
	}
	recipients := roaring.New()
	if last, ok := lastChunk(meta.EndIndex); ok {
		for hi := 0; hi <= int(last); hi++ {
			recipients.Or(chunkAt(uint16(hi), meta.Version))
		}
	}
	recipients.Remove(meta.SenderIndex)
	if uint64(meta.Recipients) != recipients.GetCardinality() {
		c.errorf("%s: %d recipients recorded, %d in its membership", base+s, meta.Recipients, recipients.GetCardinality())
	}
	if !roaring.AndNot(got, recipients).IsEmpty() {
		c.errorf("%s: readers %v are not recipients", base+s, roaring.AndNot(got, recipients).ToArray())
	}
	c.model(base, s, vals, got, recipients, mk, meta)
}

// model checks a message's D and P against their counts, dn == |D \ R|,
// both within the recipients, and its read-time log: public entries of
// readers in R, private ones of readers in P. P may meet R (a reader who
// read privately, then publicly after privacy was turned off).
func (c *redisChecker) model(base, s string, vals map[string]string, readers, recipients *roaring.Bitmap, keys *modelKeys, meta messageRecord) {
	mk := base + s
	limit, _ := strconv.ParseInt(vals["sp"], 10, 64)
	sets := map[byte]*roaring.Bitmap{}
	for _, k := range []byte{'D', 'P'} {
		field, countField := "d", "dc"
		if k == 'P' {
			field, countField = "p", "pc"
		}
		count, _ := strconv.ParseInt(vals[countField], 10, 64)
		set := roaring.New()
		forms := 0
		if v, ok := vals[field]; ok {
			forms++
			if meta.EndIndex > 512 {
				c.errorf("%s: %s inline for %d indexes", mk, field, meta.EndIndex)
			}
			set.Or(bitsToBitmap(v, 0))
		}
		if sk := keys.sparse[k]; sk != "" {
			forms++
			if count >= limit {
				c.errorf("%s: sparse %c with count %d, limit %d", mk, k, count, limit)
			}
			ms, err := c.b.c.SMembers(c.ctx, base+sk).Result()
			if err != nil {
				c.errorf("%s: %v", base+sk, err)
			}
			for _, m := range ms {
				n, err := strconv.ParseUint(m, 10, 32)
				if err != nil {
					c.errorf("%s: bad member %q", base+sk, m)
				}
				set.Add(uint32(n))
			}
		}
		if len(keys.dense[k]) > 0 {
			forms++
		}
		for _, dk := range keys.dense[k] {
			hi, _ := strconv.Atoi(dk[strings.LastIndexByte(dk, ':')+1:])
			set.Or(c.bitmapOf(base+dk, uint32(hi)<<chunkBits))
		}
		if forms > 1 {
			c.errorf("%s: %c in %d forms", mk, k, forms)
		}
		if int64(set.GetCardinality()) != count {
			c.errorf("%s: %d in %c, count %d", mk, set.GetCardinality(), k, count)
		}
		if out := roaring.AndNot(set, recipients); !out.IsEmpty() {
			c.errorf("%s: %c holds %v, not recipients", mk, k, out.ToArray())
		}
		sets[k] = set
	}
	dn, _ := strconv.ParseInt(vals["dn"], 10, 64)
	if want := roaring.AndNot(sets['D'], readers).GetCardinality(); uint64(dn) != want {
		c.errorf("%s: dn %d, |D \\ R| %d", mk, dn, want)
	}
	if !roaring.AndNot(sets['P'], sets['D']).IsEmpty() {
		c.errorf("%s: private readers %v not delivered", mk, roaring.AndNot(sets['P'], sets['D']).ToArray())
	}
	if keys.log == "" {
		return
	}
	log, err := c.b.c.Get(c.ctx, base+keys.log).Bytes()
	if err != nil {
		c.errorf("%s: %v", base+keys.log, err)
		return
	}
	err = decodeReadTimes(log, meta.TrackedAt, func(en readTimeEntry) {
		in := readers
		if en.private {
			in = sets['P']
		}
		if !in.Contains(en.idx) {
			c.errorf("%s: read time of %d (private %v), not in its set", mk, en.idx, en.private)
		}
	})
	if err != nil {
		c.errorf("%s: bad read-time log", mk)
	}
}
