package compare

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// System is one way of keeping group read receipts: the engine, or what a
// team would build instead. Every method must give exact answers; the
// conformance test (go test ./bench/compare/) holds every system to the same
// scripted results.
//
// Members of a group have dense indexes in the order they first joined; pages
// list members in that order. Membership is versioned: the recipients of a
// message are the group's members when it was tracked, minus its sender.
type System interface {
	// Name is the system's short name in benchmark names and the report:
	// engine, redis, postgres, map, pebblekv.
	Name() string
	// CreateGroup creates group gid with members in index order (repeated IDs
	// count once). It fails with ErrGroupExists for a group ID in use.
	CreateGroup(ctx context.Context, gid string, members []string) error
	// AddMembers adds new members to gid; members already in it are skipped.
	AddMembers(ctx context.Context, gid string, members []string) error
	// RemoveMembers removes members from gid; non-members are skipped.
	// Removed members stay recipients of the messages tracked before.
	RemoveMembers(ctx context.Context, gid string, members []string) error
	// Track registers message msgID of gid, sent by sender. Its recipients
	// are fixed now.
	Track(ctx context.Context, gid, msgID, sender string) error
	// Receipts records that reader has read msgIDs (messages of gid) and
	// returns how many receipts were new. A repeated receipt, a receipt
	// for an unknown message, for the reader's own message or from a reader
	// who is not a recipient records nothing and is not an error.
	Receipts(ctx context.Context, gid, reader string, msgIDs []string) (recorded int, err error)
	// Counts returns the read and unread counts of msgIDs, in order.
	Counts(ctx context.Context, gid string, msgIDs []string) ([]Count, error)
	// Page returns up to n members who have (unread false) or have not
	// (unread true) read msgID, in member index order, starting at cursor
	// ("" for the first page). done reports that no member follows; next
	// continues the list otherwise. An unknown message fails with
	// ErrNotFound; a garbled cursor with ErrBadCursor.
	Page(ctx context.Context, gid, msgID string, unread bool, cursor string, n int) (users []string, next string, done bool, err error)
	// Close releases the system. Data in a directory or server stays.
	Close() error
}

// Count is the read state of one message.
type Count struct {
	// Found is false for a message the system does not know; the counts
	// are zero then.
	Found        bool
	Read, Unread int
}

// Event is what a message's sender learns when a receipt is recorded.
type Event struct {
	MsgID, Reader string
	Read, Unread  int
}

// Notifier is a system that tells a subscriber of every receipt recorded in a
// group (workload W7).
type Notifier interface {
	// Subscribe calls fn for every receipt recorded in gid from now on,
	// until stop is called. It returns once the subscription is live.
	Subscribe(ctx context.Context, gid string, fn func(Event)) (stop func(), err error)
}

// Footprint is a system that can say what its data costs (workload W4).
type Footprint interface {
	// Footprint returns the bytes the system holds on disk and in memory,
	// with all data hot. Callers compare two readings, so figures may
	// include a constant base.
	Footprint(ctx context.Context) (disk, mem int64, err error)
}

// Reopener is a system whose data survives a restart of its process
// (workload W6): Stop closes it, Start opens it again on the same data.
// Between the two, no other method may be called.
type Reopener interface {
	Stop() error
	Start(ctx context.Context) error
}

// Syncer is a system with a durability knob. Fixtures are loaded with sync
// writes off and measured with them on.
type Syncer interface {
	SetSync(ctx context.Context, on bool) error
}

// Loader is a system with a faster exact path for loading fixtures than
// Receipts: readers have read msgID, and none had before. It must leave the
// same state as calling Receipts for each reader.
type Loader interface {
	Load(ctx context.Context, gid, msgID string, readers []string) error
}

// Deleter is a system that can drop messages, so that a long benchmark does
// not fill its memory (a Redis message in a 1M group holds 125 KB).
type Deleter interface {
	Delete(ctx context.Context, gid string, msgIDs []string) error
}

// Errors every system returns, wrapped with detail.
var (
	ErrNotFound    = errors.New("compare: unknown group or message")
	ErrGroupExists = errors.New("compare: group already exists")
	ErrBadCursor   = errors.New("compare: invalid cursor")
	ErrBadInput    = errors.New("compare: invalid input")
	ErrRejoin      = errors.New("compare: a removed member cannot rejoin in this system")
)

// Peer cursors are the decimal member index where the next page starts.
func parseCursor(c string) (uint32, error) {
	if c == "" {
		return 0, nil
	}
	v, err := strconv.ParseUint(c, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", ErrBadCursor, c)
	}
	return uint32(v), nil
}

func formatCursor(idx uint32) string { return strconv.FormatUint(uint64(idx), 10) }

func checkPage(n int) error {
	if n <= 0 || n > 1000 {
		return fmt.Errorf("%w: page size %d", ErrBadInput, n)
	}
	return nil
}

// dedupe returns ids without repeats, in first-seen order.
func dedupe(ids []string) []string {
	seen := make(map[string]struct{}, len(ids))
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if _, ok := seen[id]; ok {
			continue
		}
		seen[id] = struct{}{}
		out = append(out, id)
	}
	return out
}

// dirSize is the total size of the regular files under dir; files deleted
// while it walks count for nothing.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if path != dir && errors.Is(err, fs.ErrNotExist) {
			return nil // deleted meanwhile (Pebble removes obsolete files in the background)
		}
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			n += fi.Size()
		}
		return nil
	})
	return n, err
}
