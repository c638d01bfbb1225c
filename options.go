package readreceipt

import (
	"time"
)

// Default limits and settings. Each can be changed with the Option of the
// same name.
const (
	// DefaultMaxMessagesPerCall is the SDK's limit on messages in one
	// SendMessageReadReceipt call.
	DefaultMaxMessagesPerCall = 30
	// DefaultMaxQueryMessages bounds the messages of one
	// GetMessageReadReceiptList call.
	DefaultMaxQueryMessages = 100
	// DefaultMaxPageSize is the SDK's limit on count in one member page.
	DefaultMaxPageSize = 100
	// DefaultMaxIDLength bounds user, group and message IDs, in bytes.
	DefaultMaxIDLength = 128
	// DefaultRetention is how long receipt state is kept.
	DefaultRetention = 30 * 24 * time.Hour
	// DefaultSweepInterval is how often expired receipt state is reclaimed.
	DefaultSweepInterval = time.Minute
	// DefaultCacheBytes bounds the engine's in-memory caches.
	DefaultCacheBytes = 64 << 20
)

// maxIDLength is the longest ID the key encoding can hold.
const maxIDLength = 255

// QueryAccess says who may read a message's counts and member lists.
type QueryAccess uint8

const (
	// AccessSender lets only the message's sender (and administrators) read
	// its receipts. This is the default, the SDK's "sender side".
	AccessSender QueryAccess = iota
	// AccessRecipients also lets every recipient of the message read them.
	AccessRecipients
)

// Option configures an Engine at Open.
type Option func(*config) error

type config struct {
	enabled            bool
	groupTypes         []GroupType
	retention          time.Duration
	sweepInterval      time.Duration
	maxMessagesPerCall int
	maxQueryMessages   int
	maxPageSize        int
	maxIDLength        int
	access             QueryAccess
	sync               bool
	now                func() time.Time
	cacheBytes         int64
	readTimes          bool
	reciprocal         bool
}

func defaultConfig() config {
	return config{
		enabled:            true,
		groupTypes:         []GroupType{GroupWork, GroupPublic, GroupMeeting},
		retention:          DefaultRetention,
		sweepInterval:      DefaultSweepInterval,
		maxMessagesPerCall: DefaultMaxMessagesPerCall,
		maxQueryMessages:   DefaultMaxQueryMessages,
		maxPageSize:        DefaultMaxPageSize,
		maxIDLength:        DefaultMaxIDLength,
		access:             AccessSender,
		sync:               true,
		now:                time.Now,
		cacheBytes:         DefaultCacheBytes,
	}
}

func positive(name string, n int) error {
	if n <= 0 {
		return errorf(ErrInvalidParameter, "%s must be positive, got %d", name, n)
	}
	return nil
}

// WithFeatureEnabled switches the whole read-receipt feature on or off.
// While it is off every receipt call fails with ErrFeatureDisabled and
// nothing is recorded; membership calls and DeleteMessage still work, so the
// engine's view of groups stays current. Default: on. See also
// Engine.SetFeatureEnabled.
func WithFeatureEnabled(on bool) Option {
	return func(c *config) error { c.enabled = on; return nil }
}

// WithGroupTypes sets the group types whose messages may ask for read
// receipts. Default: GroupWork, GroupPublic, GroupMeeting. GroupCommunity and
// GroupAVChatRoom may be added: the engine puts no cap on group size. See also
// Engine.SetGroupTypes.
func WithGroupTypes(types ...GroupType) Option {
	return func(c *config) error {
		for _, t := range types {
			if !t.valid() {
				return errorf(ErrInvalidParameter, "unknown group type %d", t)
			}
		}
		c.groupTypes = append([]GroupType(nil), types...)
		return nil
	}
}

// WithRetention sets how long a message's receipt state is kept after it was
// tracked. Afterwards the message answers ErrReceiptNotFound and its storage
// is reclaimed by the sweeper. Zero keeps state forever. Default: 30 days.
func WithRetention(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return errorf(ErrInvalidParameter, "retention must not be negative, got %v", d)
		}
		c.retention = d
		return nil
	}
}

// WithSweepInterval sets how often a background goroutine reclaims expired
// receipt state. Zero disables the background sweeper; the host then calls
// Engine.Sweep itself. Expired messages answer ErrReceiptNotFound either way.
// Default: one minute.
func WithSweepInterval(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return errorf(ErrInvalidParameter, "sweep interval must not be negative, got %v", d)
		}
		c.sweepInterval = d
		return nil
	}
}

// WithMaxMessagesPerCall sets the most messages one SendMessageReadReceipt
// may name. Default: 30, as in the SDK.
func WithMaxMessagesPerCall(n int) Option {
	return func(c *config) error { c.maxMessagesPerCall = n; return positive("max messages per call", n) }
}

// WithMaxQueryMessages sets the most messages one GetMessageReadReceiptList
// may name. Default: 100.
func WithMaxQueryMessages(n int) Option {
	return func(c *config) error { c.maxQueryMessages = n; return positive("max query messages", n) }
}

// WithMaxPageSize sets the largest count of one member page. Default: 100,
// as in the SDK.
func WithMaxPageSize(n int) Option {
	return func(c *config) error { c.maxPageSize = n; return positive("max page size", n) }
}

// WithMaxIDLength sets the longest user, group or message ID, in bytes, at
// most 255. Default: 128.
func WithMaxIDLength(n int) Option {
	return func(c *config) error {
		if n <= 0 || n > maxIDLength {
			return errorf(ErrInvalidParameter, "max ID length must be in 1..%d, got %d", maxIDLength, n)
		}
		c.maxIDLength = n
		return nil
	}
}

// WithQueryAccess sets who may read counts and member lists. Default:
// AccessSender. Administrators (AsAdmin) may always read them.
func WithQueryAccess(a QueryAccess) Option {
	return func(c *config) error {
		if a != AccessSender && a != AccessRecipients {
			return errorf(ErrInvalidParameter, "unknown query access %d", a)
		}
		c.access = a
		return nil
	}
}

// WithSyncWrites sets whether a successful write waits for the store to make
// it durable. With true (the default), a receipt acknowledged by
// SendMessageReadReceipt survives a crash of the process or of the machine;
// concurrent callers share one sync. With false, writes return sooner, but
// the last ones acknowledged may be lost if the process or the machine
// crashes (Pebble writes its log out in the background); a write is never
// applied in part either way.
func WithSyncWrites(sync bool) Option {
	return func(c *config) error { c.sync = sync; return nil }
}

// WithClock sets the clock used for tracking times and retention. Default:
// time.Now. Tests use it to expire messages without waiting.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return errorf(ErrInvalidParameter, "clock must not be nil")
		}
		c.now = now
		return nil
	}
}

// WithCacheBytes bounds the memory of the engine's caches of message state,
// membership snapshots, member indexes and user IDs. The bound is
// approximate; state in use by a call is never evicted. Default: 64 MiB.
//
// Size it for the hot set: about 1 KiB per message taking receipts or being
// counted, and, for groups whose member lists are paged, about 12 bytes per
// member for their user IDs (an eighth of the bound goes to user IDs, so a
// host paging million-member groups wants 128 MiB or more per such group
// paged at once). A miss costs a store read, not a wrong answer.
func WithCacheBytes(n int64) Option {
	return func(c *config) error {
		if n <= 0 {
			return errorf(ErrInvalidParameter, "cache bytes must be positive, got %d", n)
		}
		c.cacheBytes = n
		return nil
	}
}

// WithReadTimes keeps when each member read a group message, returned with
// member pages (MemberPage.ReadTimes) and by GetMessageReadTimes. It costs
// 2 to 7 bytes per receipt (see the read-time log in model.go) and is off by
// default, so that the default costs stay those of counts and sets alone.
// C2C read times are always kept. Receipts recorded while it was off have
// no time.
func WithReadTimes(on bool) Option {
	return func(c *config) error { c.readTimes = on; return nil }
}

// WithReciprocalPrivacy makes private receipts reciprocal: a user whose
// receipts are private (SetReceiptsPrivate) does not see others' reads
// either (ErrPrivateReceipts, and no read events). Delivery stays visible.
// Default: off.
func WithReciprocalPrivacy(on bool) Option {
	return func(c *config) error { c.reciprocal = on; return nil }
}
