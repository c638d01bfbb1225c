package readreceipt

import (
	"bytes"
	"context"
	"crypto/rand"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/readreceipt/readreceipt/store"
	"github.com/readreceipt/readreceipt/store/pebblestore"
)

// schemaVersion is the layout of keys and records this engine writes.
// Version 2: a set may be stored as a bitset ('b'), and a group message
// whose recipients fit in one chunk keeps no count key.
// Version 3: member names and user -> index lookups are packed many to a
// key (the 'n' and 'h' group keys) instead of one key each ('i', 'u').
// Version 4: a group keeps one counter of live messages per membership
// version ('g' lp(group) 'v' version64) instead of one key per message
// ('g' lp(group) 'v' version64 lp(msg)); Open migrates a version-3 store
// (migrate.go).
const schemaVersion = 4

// convLockStripes is the number of conversation locks. Conversations are
// hashed onto them; two conversations that share a stripe only wait for each
// other's membership changes and deletions.
const convLockStripes = 256

// Engine is a read-receipt engine over one backend: a Store (Open, OpenDir)
// or Redis (OpenRedis). It is safe for concurrent use by many goroutines.
// Close it when done.
type Engine struct {
	be      backend
	cfg     config
	secret  []byte
	macs    macPool // of HMACs keyed with secret
	enabled atomic.Bool
	types   atomic.Pointer[[]GroupType]

	// life is held for reading by every call and for writing by Close.
	life   sync.RWMutex
	closed bool

	subs subscribers[ReceiptEvent]
	own  subscribers[OwnReadEvent]

	stopSweep chan struct{}
	sweepDone chan struct{}
}

// embedded is the backend over a store.Store: roaring bitmaps in ordered
// keys (keys.go), with the per-message state mirrored in memory. It assumes
// it is the only writer of its store.
type embedded struct {
	*Engine // the engine's configuration and decisions

	st      store.Store
	ownsSt  bool
	commits *committer // group commit of synced writes (commit.go)

	// convLocks serialise, per conversation, the calls that remove or
	// reshape state (membership changes, DeleteMessage, DismissGroup,
	// expiry: write lock) against the calls that read it or add to it
	// (tracking, receipts, queries: read lock).
	convLocks [convLockStripes]sync.RWMutex

	entries *entryTable
	rlog    *receiptLog           // receipts durable, not yet folded (rlog.go)
	chunks  *lru[*roaring.Bitmap] // (group, incarnation, hi, version) -> membership chunk
	blobs   *lru[*roaring.Bitmap] // (incarnation, chunk key) -> the same, shared between versions
	indexes *lru[uint32]          // (group, incarnation, user) -> member index
	groups  *lru[*groupRecord]    // group ID -> its record; never modified
	names   *lru[*nameBlock]      // (group, incarnation, block) -> user IDs

	// The privacy flags and marks (embedded_order.go).
	privacyFlags *lru[bool]                 // user -> receipts private
	keyLocks     [keyLockStripes]sync.Mutex // a mark's or a flag's read-modify-write
}

var _ backend = (*embedded)(nil)

// newEngine applies opts and returns an engine without a backend.
func newEngine(opts []Option) (*Engine, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	e := &Engine{cfg: cfg}
	e.enabled.Store(cfg.enabled)
	types := slices.Clone(cfg.groupTypes)
	slices.Sort(types)
	types = slices.Compact(types)
	e.types.Store(&types)
	return e, nil
}

// start attaches be and starts the sweeper.
func (e *Engine) start(be backend) {
	e.be = be
	e.secret = be.cursorSecret()
	if e.cfg.retention > 0 && e.cfg.sweepInterval > 0 {
		e.stopSweep = make(chan struct{})
		e.sweepDone = make(chan struct{})
		go e.sweepLoop()
	}
}

// Open returns an engine over st. The engine does not close st; the caller
// does, after Engine.Close. A store holds one engine's state: open at most
// one engine on it at a time.
func Open(st store.Store, opts ...Option) (*Engine, error) {
	e, err := newEngine(opts)
	if err != nil {
		return nil, err
	}
	cfg := e.cfg
	b := &embedded{
		Engine:  e,
		st:      st,
		commits: newCommitter(st),
		entries: newEntryTable(cfg.cacheBytes * 6 / 16),
		chunks:  newLRU[*roaring.Bitmap](cfg.cacheBytes / 16),
		blobs:   newLRU[*roaring.Bitmap](cfg.cacheBytes / 4),
		indexes: newLRU[uint32](cfg.cacheBytes * 2 / 16),
		groups:  newLRU[*groupRecord](cfg.cacheBytes / 16),
		names:   newLRU[*nameBlock](cfg.cacheBytes * 2 / 16),

		privacyFlags: newLRU[bool](privacyCacheBytes(cfg.cacheBytes)),
	}
	b.rlog = newReceiptLog(b)
	if _, taken := openStores.LoadOrStore(st, true); taken {
		return nil, errorf(ErrInvalidParameter, "the store is already in use by an engine: one engine per store (use OpenRedis to share state between engines)")
	}
	if err := b.init(context.Background()); err != nil {
		openStores.Delete(st)
		return nil, err
	}
	b.rlog.start()
	e.start(b)
	return e, nil
}

// openStores holds the stores open engines use: a second engine on one
// would keep a second, diverging copy of the per-message state.
var openStores sync.Map

// OpenDir opens (creating if needed) a Pebble store in dir and an engine
// over it. Close closes both. Pebble locks the directory: a second engine
// on the same directory is refused.
func OpenDir(dir string, opts ...Option) (*Engine, error) {
	st, err := pebblestore.Open(dir, nil)
	if err != nil {
		return nil, internalErr("open store", err)
	}
	e, err := Open(st, opts...)
	if err != nil {
		_ = st.Close()
		return nil, err
	}
	e.be.(*embedded).ownsSt = true
	return e, nil
}

// init checks the schema version and loads (or creates) the cursor secret.
func (e *embedded) init(ctx context.Context) error {
	vals, err := e.st.Get(ctx, [][]byte{keySchemaVersion, keySecret})
	if err != nil {
		return internalErr("open", err)
	}
	if vals[0] != nil {
		if bytes.Equal(vals[0], []byte{3}) {
			if err := e.migrate3(ctx); err != nil {
				return err
			}
		} else if !bytes.Equal(vals[0], []byte{schemaVersion}) {
			return errorf(ErrInternal, "store holds schema version %v, this engine reads %d", vals[0], schemaVersion)
		}
	}
	if vals[1] != nil {
		e.secret = vals[1]
		return e.rlog.replay(ctx)
	}
	e.secret = make([]byte, 32)
	if _, err := rand.Read(e.secret); err != nil {
		return internalErr("cursor secret", err)
	}
	var b store.Batch
	b.Set(keySchemaVersion, []byte{schemaVersion})
	b.Set(keySecret, e.secret)
	return internalErr("open", e.st.Write(ctx, &b, store.WriteOptions{Sync: true}))
}

func (e *embedded) cursorSecret() []byte { return e.secret }

// ping has nothing to reach: the store is in the process.
func (e *embedded) ping(context.Context) error { return nil }

// announce and listen have nothing to do: no other engine shares the store.
func (e *embedded) announce([]ReceiptEvent, []OwnReadEvent) {}
func (e *embedded) listen()                                 {}

func (e *embedded) close() error {
	defer openStores.Delete(e.st)
	// Folding what the log holds only spares the next Open the work: the
	// records are durable, so a failed fold loses nothing.
	_ = e.rlog.close()
	if e.ownsSt {
		return e.st.Close()
	}
	return nil
}

// Close stops the sweeper, waits for calls in progress, and closes the
// store if the engine opened it (OpenDir). Calls made after Close return
// ErrClosed. Close is idempotent.
func (e *Engine) Close() error {
	e.life.Lock()
	if e.closed {
		e.life.Unlock()
		return nil
	}
	e.closed = true
	e.life.Unlock()
	if e.stopSweep != nil {
		close(e.stopSweep)
		<-e.sweepDone
	}
	return e.be.close()
}

// Settle writes the embedded backend's pending state to its store's own
// keys: the receipt log's records (durable already, folded in the
// background a moment after each call) are folded into the per-message keys
// and deleted. Receipts acknowledged before Settle is called are folded when
// it returns. Nothing changes for the answers; a host calls it before it
// measures or copies the store's data at rest (after which, on Pebble, a
// flush and a compaction leave only what the data needs). On Redis it does
// nothing.
func (e *Engine) Settle(ctx context.Context) error {
	if err := e.enter(); err != nil {
		return err
	}
	defer e.leave()
	if b, ok := e.be.(*embedded); ok {
		return b.rlog.settle(ctx)
	}
	return nil
}

// enter registers a call; it fails once the engine is closed.
func (e *Engine) enter() error {
	e.life.RLock()
	if e.closed {
		e.life.RUnlock()
		return ErrClosed
	}
	return nil
}

func (e *Engine) leave() { e.life.RUnlock() }

// enterReceipts is enter for the calls the feature switch governs.
func (e *Engine) enterReceipts() error {
	if err := e.enter(); err != nil {
		return err
	}
	if !e.enabled.Load() {
		e.leave()
		return ErrFeatureDisabled
	}
	return nil
}

// Ping reports whether the engine can reach its state now: always on the
// embedded backend; on Redis, whether every master answers (ErrUnavailable
// if not). Servers use it for readiness checks.
func (e *Engine) Ping(ctx context.Context) error {
	if err := e.enter(); err != nil {
		return err
	}
	defer e.leave()
	return e.be.ping(ctx)
}

// SetFeatureEnabled switches the read-receipt feature on or off at run time
// (see WithFeatureEnabled). Calls already in progress finish as they began.
func (e *Engine) SetFeatureEnabled(on bool) { e.enabled.Store(on) }

// FeatureEnabled reports whether the read-receipt feature is on.
func (e *Engine) FeatureEnabled() bool { return e.enabled.Load() }

// SetGroupTypes changes, at run time, which group types support read
// receipts (see WithGroupTypes). Messages already tracked keep working.
func (e *Engine) SetGroupTypes(types ...GroupType) error {
	for _, t := range types {
		if !t.valid() {
			return errorf(ErrInvalidParameter, "unknown group type %d", t)
		}
	}
	ts := slices.Clone(types)
	slices.Sort(ts)
	ts = slices.Compact(ts)
	e.types.Store(&ts)
	return nil
}

// GroupTypes returns the group types that support read receipts.
func (e *Engine) GroupTypes() []GroupType { return slices.Clone(*e.types.Load()) }

func (e *Engine) groupTypeEnabled(t GroupType) bool {
	return slices.Contains(*e.types.Load(), t)
}

var lockSeed = maphash.MakeSeed()

// convLock returns the lock of a conversation, by its encoded key.
func (e *embedded) convLock(conv []byte) *sync.RWMutex {
	return &e.convLocks[maphash.Bytes(lockSeed, conv)%convLockStripes]
}

func (e *Engine) now() int64 { return e.cfg.now().UnixNano() }

// retentionNow returns the time a call judges expiry by, read once per
// call (reading the clock is a good part of a cached count's cost), or 0
// when nothing expires.
func (e *Engine) retentionNow() int64 {
	if e.cfg.retention <= 0 {
		return 0
	}
	return e.now()
}

// expiredAt reports whether a message tracked at trackedAt is past
// retention at now, a value of retentionNow.
func (e *Engine) expiredAt(trackedAt, now int64) bool {
	return e.cfg.retention > 0 && now-trackedAt >= int64(e.cfg.retention)
}

func (e *embedded) writeOpts() store.WriteOptions { return store.WriteOptions{Sync: e.cfg.sync} }

// Retention returns the configured retention; zero means forever.
func (e *Engine) Retention() time.Duration { return e.cfg.retention }
