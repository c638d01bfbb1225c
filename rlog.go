package readreceipt

import (
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/readreceipt/readreceipt/internal/faults"
	"github.com/readreceipt/readreceipt/internal/yield"
	"github.com/readreceipt/readreceipt/store"
)

// The receipt log: how the embedded backend makes a receipt call durable
// with one store operation instead of one per receipt.
//
// A receipt call writes one log record (\x00 'L' seq64) holding what the
// call recorded: the reader's index, the read time and, per receipt, the
// message's key and what the receipt changed (its receiptAct). The record
// is written synced; once it is durable the receipts are committed to the
// cached entries, which answer every read, and the call is acknowledged.
//
// Folding turns the log into the per-message keys the store keeps
// (reader chunks, counters, D and P, read times, as writeReceipts wrote
// them before the log existed): it adds up the records of many calls per
// key, so a message that took a hundred receipts since the last fold takes
// one merge operand, and deletes the records it folded in the same atomic
// batch. A record is therefore in the store's per-message keys or in the
// log, never both and never neither. Folds run in the background (every
// foldInterval, or sooner once foldReceipts receipts wait), before any
// call deletes or replaces a message's keys (settle), before a call reads
// a key the log feeds directly from the store (the read-time log), on
// Check, and on Close. On Open, whatever the log still holds (a crash came
// before its fold) is folded before the engine answers anything.
//
// A message with receipts not folded yet is pinned in the entry table: its
// cached state is then the only complete copy outside the log, so it must
// not be evicted and read back from the store. Folding is also where a hot
// message's state is collapsed (written whole) once it has taken
// collapseEvery merge operands (see fold for when the whole value is
// exact).
type receiptLog struct {
	e   *embedded
	seq uint64 // last sequence number given out (mu)

	mu       sync.Mutex
	calls    []*logCall // committed, not folded, in commit order
	receipts int        // receipts in calls

	foldMu sync.Mutex // one fold at a time
	folder folder     // the fold's, kept between folds (foldMu)
	kick   chan struct{}
	stop   chan struct{}
	done   chan struct{}
}

// A fold starts once this many receipts wait, or foldInterval after the
// last one. Tests lower them.
var (
	foldReceipts = 128 << 10
	foldInterval = 100 * time.Millisecond
)

// logCall is the record of one receipt call.
type logCall struct {
	seq       uint64
	isGroup   bool
	readTimes bool // WithReadTimes: the read-time log takes the reads
	idx       uint32
	readAt    int64
	items     []logItem
}

// logCalls recycles the records of receipt calls: a call of 30 receipts
// would otherwise allocate some 1.3 KB for its record. A record goes back
// once it is folded, or when its write failed (never committed).
var logCalls = sync.Pool{New: func() any { return new(logCall) }}

// newLogCall returns an empty record of n items.
func newLogCall(n int) *logCall {
	c := logCalls.Get().(*logCall)
	if cap(c.items) < n {
		c.items = make([]logItem, n)
	}
	c.items = c.items[:n]
	return c
}

// free returns c to logCalls. Nothing may use c afterwards.
func (c *logCall) free() {
	if cap(c.items) > 1024 {
		return // a call far over the usual 30 receipts: let it go
	}
	clear(c.items) // the entries they point to may be evicted
	*c = logCall{items: c.items[:0]}
	logCalls.Put(c)
}

// logItem is one receipt of a call: the message's key prefix and what the
// receipt changed. own is the message's ownCount (which keys hold its
// state); trackedAt feeds the read-time log.
type logItem struct {
	m         *msgEntry // the pinned entry; nil for records read back on Open
	key       string
	act       receiptAct
	own       bool
	trackedAt int64
}

var keyLogPrefix = []byte{prefixSystem, 'L'}

func logKey(seq uint64) []byte {
	return appendU64(append(make([]byte, 0, len(keyLogPrefix)+8), keyLogPrefix...), seq)
}

// Record formats. Version 1 wrote every receipt's whole message key and
// track time; version 2 writes the keys' common prefix once (a call's
// messages are of one conversation, so it is the conversation's key and
// more), then each key's rest, and the track time only where the
// read-time log needs it (readTimes): a call of 30 receipts in a group
// takes about 250 bytes instead of 800, in the store's write-ahead log
// and memtable. Records of both versions are read (Open replays what a
// crash left, whichever version wrote it).
const (
	logRecordV1      = 1
	logRecordVersion = 2
)

// itemOwn marks an item's ownCount in the act byte of a version 2 record.
const itemOwn = 0x80

// encode appends the record of c to b, in version logRecordVersion.
func (c *logCall) encode(b []byte) []byte {
	flags := byte(0)
	if c.isGroup {
		flags |= 1
	}
	if c.readTimes {
		flags |= 2
	}
	b = append(b, logRecordVersion, flags)
	b = binary.AppendUvarint(b, uint64(c.idx))
	b = binary.AppendVarint(b, c.readAt)
	b = binary.AppendUvarint(b, uint64(len(c.items)))
	var prefix string
	if len(c.items) > 0 {
		prefix = c.items[0].key
		for _, it := range c.items[1:] {
			n := 0
			for n < len(prefix) && n < len(it.key) && prefix[n] == it.key[n] {
				n++
			}
			prefix = prefix[:n]
		}
	}
	b = binary.AppendUvarint(b, uint64(len(prefix)))
	b = append(b, prefix...)
	for _, it := range c.items {
		rest := it.key[len(prefix):]
		b = binary.AppendUvarint(b, uint64(len(rest)))
		b = append(b, rest...)
		act := byte(it.act)
		if it.own {
			act |= itemOwn
		}
		b = append(b, act)
		if c.readTimes {
			b = binary.AppendVarint(b, it.trackedAt)
		}
	}
	return b
}

var errBadLogRecord = errors.New("readreceipt: malformed receipt log record")

// validAct reports whether a is what a logged receipt can record.
func validAct(a byte) bool {
	return a != 0 && receiptAct(a)&^(actRead|actUndeliver|actDeliver|actPrivate) == 0
}

// decodeLogCall reads a record written by encode, of either version. An
// item's track time is kept only where the record says the read-time log
// takes the reads (the one use of it).
func decodeLogCall(seq uint64, v []byte) (*logCall, error) {
	if len(v) < 2 || (v[0] != logRecordV1 && v[0] != logRecordVersion) || v[1]&^3 != 0 {
		return nil, errBadLogRecord
	}
	version := v[0]
	c := &logCall{seq: seq, isGroup: v[1]&1 != 0, readTimes: v[1]&2 != 0}
	v = v[2:]
	uv := func() uint64 {
		x, n := binary.Uvarint(v)
		if n <= 0 {
			v = nil
			return 0
		}
		v = v[n:]
		return x
	}
	sv := func() int64 {
		x, n := binary.Varint(v)
		if n <= 0 {
			v = nil
			return 0
		}
		v = v[n:]
		return x
	}
	// bytesOf returns the next n bytes, or nil (and v nil) if there are
	// fewer.
	bytesOf := func(n uint64) []byte {
		if v == nil || n > uint64(len(v)) {
			v = nil
			return nil
		}
		out := v[:n]
		v = v[n:]
		return out
	}
	idx := uv()
	c.readAt = sv()
	n := uv()
	if v == nil || idx > 1<<32-1 || n > uint64(len(v)) {
		return nil, errBadLogRecord
	}
	c.idx = uint32(idx)
	var prefix []byte
	if version == logRecordVersion {
		if prefix = bytesOf(uv()); v == nil {
			return nil, errBadLogRecord
		}
	}
	c.items = make([]logItem, n)
	for i := range c.items {
		rest := bytesOf(uv())
		if v == nil || len(prefix)+len(rest) == 0 {
			return nil, errBadLogRecord
		}
		it := &c.items[i]
		it.key = string(prefix) + string(rest)
		if version == logRecordV1 {
			if len(v) < 2 || v[1] > 1 || !validAct(v[0]) {
				return nil, errBadLogRecord
			}
			it.act, it.own = receiptAct(v[0]), v[1] == 1
			v = v[2:]
			if it.trackedAt = sv(); v == nil {
				return nil, errBadLogRecord
			}
			if !c.readTimes {
				it.trackedAt = 0
			}
			continue
		}
		if len(v) < 1 || !validAct(v[0]&^itemOwn) {
			return nil, errBadLogRecord
		}
		it.act, it.own = receiptAct(v[0]&^itemOwn), v[0]&itemOwn != 0
		v = v[1:]
		if c.readTimes {
			if it.trackedAt = sv(); v == nil {
				return nil, errBadLogRecord
			}
		}
	}
	if len(v) != 0 {
		return nil, errBadLogRecord
	}
	return c, nil
}

func newReceiptLog(e *embedded) *receiptLog {
	return &receiptLog{e: e, kick: make(chan struct{}, 1)}
}

// replay folds what the log holds, before the engine answers anything:
// the records of calls acknowledged (or not: a crash may come between a
// record's write and the call's answer) whose fold had not been written.
func (l *receiptLog) replay(ctx context.Context) error {
	var calls []*logCall
	var bad error
	err := l.e.st.Scan(ctx, keyLogPrefix, prefixEnd(keyLogPrefix), func(k, v []byte) bool {
		if len(k) != len(keyLogPrefix)+8 {
			bad = errBadLogRecord
			return false
		}
		c, err := decodeLogCall(binary.BigEndian.Uint64(k[len(keyLogPrefix):]), v)
		if err != nil {
			bad = err
			return false
		}
		calls = append(calls, c)
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return internalErr("read receipt log", err)
	}
	if len(calls) == 0 {
		return nil
	}
	var b store.Batch
	var f folder
	for _, c := range calls {
		f.add(c, nil)
	}
	f.emit(&b)
	b.DeleteRange(keyLogPrefix, prefixEnd(keyLogPrefix))
	return internalErr("fold receipt log", l.e.st.Write(ctx, &b, store.WriteOptions{Sync: true}))
}

// start starts the background folds.
func (l *receiptLog) start() {
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go l.loop()
}

func (l *receiptLog) loop() {
	defer close(l.done)
	t := time.NewTicker(foldInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-l.kick:
		case <-t.C:
		}
		// A failed fold leaves its records where they were: the next one
		// tries again, and a call that needs the fold (settle) reports it.
		_ = l.fold(context.Background())
	}
}

// close stops the background folds and folds what is left, so that the
// next Open has nothing to replay.
func (l *receiptLog) close() error {
	if l.stop != nil {
		close(l.stop)
		<-l.done
		l.stop = nil
	}
	return l.fold(context.Background())
}

// write writes c's record and so makes its receipts durable (synced unless
// WithSyncWrites(false)). The caller then commits the receipts to their
// entries and calls committed.
func (l *receiptLog) write(ctx context.Context, c *logCall) error {
	l.mu.Lock()
	l.seq++
	c.seq = l.seq
	l.mu.Unlock()
	size := 32
	for _, it := range c.items {
		size += len(it.key) + 16
	}
	if faults.EarlyReceiptAck.Load() {
		return nil
	}
	// The store keeps none of the batch once Write returned: the scratch
	// goes back for the next call's record.
	w := logWrites.Get().(*logWrite)
	defer w.free()
	w.key = appendU64(append(w.key[:0], keyLogPrefix...), c.seq)
	w.rec = c.encode(slices.Grow(w.rec[:0], size))
	w.b.Set(w.key, w.rec)
	return l.e.st.Write(ctx, &w.b, l.e.writeOpts())
}

// logWrite is write's scratch: the batch, key and value of one record.
type logWrite struct {
	b        store.Batch
	key, rec []byte
}

var logWrites = sync.Pool{New: func() any { return new(logWrite) }}

func (w *logWrite) free() {
	w.b.Reset()
	if cap(w.rec) <= 64<<10 {
		logWrites.Put(w)
	}
}

// committed queues c, whose receipts are committed to their entries, for
// the next fold.
func (l *receiptLog) committed(c *logCall) {
	l.mu.Lock()
	l.calls = append(l.calls, c)
	l.receipts += len(c.items)
	full := l.receipts >= foldReceipts
	l.mu.Unlock()
	if full {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
}

// settle folds every committed record. Calls that delete or replace a
// message's keys settle first (holding what keeps new receipts off that
// message), so that no record folded later writes to keys they deleted.
func (l *receiptLog) settle(ctx context.Context) error {
	return internalErr("fold receipt log", l.fold(ctx))
}

// settleFor settles until none of ms has receipts not folded: the calls
// that read a key the log feeds (the read-time log) read it whole. A call
// that committed its receipts a moment ago may not have queued its record
// yet (committed); so this settles again, a bounded number of times, for
// as long as one of ms has receipts left.
func (l *receiptLog) settleFor(ctx context.Context, ms ...*msgEntry) error {
	for try := 0; ; try++ {
		waiting := false
		for _, m := range ms {
			m.mu.Lock()
			waiting = waiting || m.unfolded > 0
			m.mu.Unlock()
		}
		if !waiting || try == 100 {
			return nil
		}
		if try > 0 {
			runtime.Gosched()
		}
		if err := l.settle(ctx); err != nil {
			return err
		}
	}
}

// fold folds the committed records: their deltas added up per key, the
// hot messages collapsed, the records deleted, in one unsynced batch (the
// records are durable already; if the batch is lost, they are folded
// again on Open).
func (l *receiptLog) fold(ctx context.Context) error {
	l.foldMu.Lock()
	defer l.foldMu.Unlock()
	l.mu.Lock()
	calls := l.calls
	l.calls, l.receipts = nil, 0
	l.mu.Unlock()
	if len(calls) == 0 {
		return nil
	}
	f := &l.folder
	f.reset()
	// The fold runs beside the calls it serves: it steps aside for them
	// (see yield) rather than hold a P for the ~10 ms a large fold takes.
	var y yield.Yielder
	for _, c := range calls {
		y.Tick()
		f.add(c, nil)
	}
	// Hot messages are written whole instead (collapseInto). Receipts
	// still pending do not matter: they are not in the cached state, and
	// their records, written or not, are not in this fold; they will be
	// folded on top of the whole value. Receipts committed to the cached
	// state but not queued yet (committed) are in the whole value and
	// will be folded again: harmless for sets, which is all a message
	// whose recipients fit one chunk keeps, but a counter would count
	// them twice, so a message that keeps one is written whole only when
	// every receipt committed to it is in this fold.
	var b store.Batch
	var whole map[*msgEntry]bool
	for _, d := range f.order {
		y.Tick()
		m, n := d.m, d.n
		m.mu.Lock()
		if m.exists && (m.unfolded == n || !m.meta.ownCount()) && int(m.deltas)+1 >= collapseEvery {
			if l.e.collapseInto(&b, m) {
				if whole == nil {
					whole = make(map[*msgEntry]bool)
				}
				whole[m] = true
			}
		}
		m.mu.Unlock()
	}
	if len(whole) > 0 {
		f.reset()
		for _, c := range calls {
			y.Tick()
			f.add(c, whole)
		}
	}
	var wb store.Batch
	f.emit(&wb)
	for _, op := range b.Ops() {
		wb.Set(op.Key, op.Value)
	}
	deleteSeqs(&wb, calls)
	if err := l.e.st.Write(context.WithoutCancel(ctx), &wb, store.WriteOptions{}); err != nil {
		l.mu.Lock()
		l.calls = append(calls, l.calls...)
		for _, c := range calls {
			l.receipts += len(c.items)
		}
		l.mu.Unlock()
		return err
	}
	for _, d := range f.order {
		m := d.m
		m.mu.Lock()
		m.unfolded -= d.n
		if whole[m] {
			m.collapsed()
		} else if d.touched {
			m.deltas++
		}
		left := m.unfolded
		m.mu.Unlock()
		if left == 0 {
			l.e.entries.release(m) // pinned by commitReceipts
		}
	}
	for _, c := range calls {
		c.free()
	}
	return nil
}

// deleteSeqs deletes the records of calls: a range per run of consecutive
// sequence numbers.
func deleteSeqs(b *store.Batch, calls []*logCall) {
	seqs := make([]uint64, len(calls))
	for i, c := range calls {
		seqs[i] = c.seq
	}
	slices.Sort(seqs)
	for i := 0; i < len(seqs); {
		j := i + 1
		for j < len(seqs) && seqs[j] == seqs[j-1]+1 {
			j++
		}
		if j == i+1 {
			b.Delete(logKey(seqs[i]))
		} else {
			b.DeleteRange(logKey(seqs[i]), logKey(seqs[j-1]+1))
		}
		i = j
	}
}

// folder adds up the deltas of logged receipts per message, in the order
// messages were first touched: one map lookup per receipt.
//
// A folder is reused from fold to fold (reset): the deltas, their slices
// and the buffer emit cuts keys and operands from keep their memory, as a
// fold every 100 ms would otherwise allocate them all again (a sixth of
// what W1 allocated).
type folder struct {
	msgs  map[string]*msgDelta
	order []*msgDelta
	free  []*msgDelta // emptied deltas of an earlier fold
	arena []byte      // emit's keys and operands
}

// folderKeep bounds what a folder keeps between folds: the deltas of a
// fold of more messages are let go.
const folderKeep = 1 << 14

// reset empties f for the next fold. The batch of the last emit must have
// been written (the store keeps none of it) or dropped.
func (f *folder) reset() {
	if len(f.order)+len(f.free) > folderKeep || cap(f.arena) > 64<<20 {
		*f = folder{}
		return
	}
	for _, d := range f.order {
		*d = msgDelta{sets: d.sets[:0], log: d.log[:0]} // drops d.m: the entry may go
	}
	f.free = append(f.free, f.order...)
	f.order = f.order[:0]
	clear(f.msgs)
	f.arena = f.arena[:0]
}

// msgDelta is what a fold writes for one message: set additions by key
// suffix (the readers' chunks, chunk 0's packed D and P, the chunks of D
// and P), the counter's delta, the C2C read time, the read-time log.
type msgDelta struct {
	key string
	// m is the message's pinned entry (nil on Open), n its receipts in the
	// fold; touched says the fold writes merge operands to its keys.
	m       *msgEntry
	n       int32
	touched bool
	sets    []setDelta
	counter int64
	hasAt   bool
	at      int64
	log     []byte
}

type setDelta struct {
	kind byte // msgReaders, msgDelivered, msgPrivate
	hi   uint16
	adds []uint32
}

func (d *msgDelta) set(kind byte, hi uint16) *setDelta {
	for i := range d.sets {
		if d.sets[i].kind == kind && d.sets[i].hi == hi {
			return &d.sets[i]
		}
	}
	if n := len(d.sets); n < cap(d.sets) {
		d.sets = d.sets[:n+1] // an emptied set of an earlier fold
		s := &d.sets[n]
		s.kind, s.hi, s.adds = kind, hi, s.adds[:0]
		return s
	}
	d.sets = append(d.sets, setDelta{kind: kind, hi: hi})
	return &d.sets[len(d.sets)-1]
}

func (f *folder) msg(key string) *msgDelta {
	if f.msgs == nil {
		f.msgs = make(map[string]*msgDelta)
	}
	if d, ok := f.msgs[key]; ok {
		return d
	}
	var d *msgDelta
	if n := len(f.free); n > 0 {
		d, f.free = f.free[n-1], f.free[:n-1]
		d.key = key
	} else {
		d = &msgDelta{key: key}
	}
	f.msgs[key] = d
	f.order = append(f.order, d)
	return d
}

// add adds the deltas of c's receipts, but those of messages in whole
// (collapsed: their reader chunks, D, P and counter are written whole),
// whose read time and read-time log entries are still added.
func (f *folder) add(c *logCall, whole map[*msgEntry]bool) {
	idx, hi := c.idx, chunkOf(c.idx)
	for _, it := range c.items {
		d := f.msg(it.key)
		d.m = it.m
		d.n++
		act, own := it.act, it.own
		if it.m == nil || !whole[it.m] {
			if c.isGroup || own {
				d.touched = true
			}
			if c.isGroup && act&actRead != 0 {
				s := d.set(msgReaders, hi)
				s.adds = append(s.adds, idx)
			}
			if c.isGroup && !own && act&(actDeliver|actPrivate) != 0 {
				s := d.set(msgReaders, 0)
				if act&actDeliver != 0 {
					s.adds = append(s.adds, idx+packDelivered)
				}
				if act&actPrivate != 0 {
					s.adds = append(s.adds, idx+packPrivate)
				}
			}
			if own {
				if act&actRead != 0 {
					d.counter++
				}
				if act&actDeliver != 0 {
					d.counter += 1 << 32
				}
				if act&actUndeliver != 0 {
					d.counter -= 1 << 32
				}
				if c.isGroup && act&actDeliver != 0 {
					s := d.set(msgDelivered, hi)
					s.adds = append(s.adds, idx)
				}
				if act&actPrivate != 0 {
					s := d.set(msgPrivate, hi)
					s.adds = append(s.adds, idx)
				}
			}
		}
		if !c.isGroup && act&actRead != 0 {
			d.hasAt, d.at = true, max(d.at, c.readAt)
		}
		if c.readTimes && act&(actRead|actPrivate) != 0 {
			d.log = appendReadTime(d.log, idx, act&actRead == 0, it.trackedAt, c.readAt)
		}
	}
}

// emit writes the added-up deltas to b.
func (f *folder) emit(b *store.Batch) {
	// Keys and operands are cut from f.arena. When it grows, the slices
	// cut before stay valid (they keep the old array).
	cut := func(start int) []byte { return f.arena[start:len(f.arena):len(f.arena)] }
	for _, d := range f.order {
		key := func(suffix ...byte) []byte {
			start := len(f.arena)
			f.arena = append(append(f.arena, d.key...), suffix...)
			return cut(start)
		}
		for _, s := range d.sets {
			k := key(s.kind, byte(s.hi>>8), byte(s.hi))
			start := len(f.arena)
			f.arena = store.AppendSetAdd(f.arena, s.adds...)
			b.Merge(k, cut(start))
		}
		if d.counter != 0 {
			k := key(msgCount)
			start := len(f.arena)
			f.arena = store.AppendCounter(f.arena, d.counter)
			b.Merge(k, cut(start))
		}
		if d.hasAt {
			b.Set(key(msgReadAt), binary.BigEndian.AppendUint64(nil, uint64(d.at)))
		}
		if len(d.log) > 0 {
			b.Merge(key(msgReadLog), store.EncodeAppend(d.log))
		}
	}
}
