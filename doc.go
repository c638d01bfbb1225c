// Package readreceipt is an embedded read-receipt engine for IM servers.
//
// A host server links the engine in and calls it as its users send and read
// messages. The engine keeps, durably and exactly, which messages asked for
// read receipts, who they were sent to, who has read them, and tells each
// sender when a receipt arrives. Counts are kept, not recomputed, and member
// lists page from a cursor, so that groups of any size, up to millions of
// members, cost the same per call as small ones.
//
// # Basics
//
// A conversation is either C2C (two users, see C2C) or a group (see Group).
// The host keeps the engine's view of groups current with CreateGroup,
// AddGroupMembers, RemoveGroupMembers and DismissGroup.
//
// When a user sends a message that asks for receipts, the host calls
// TrackMessage. The message's recipients are fixed then: for C2C the other
// user; for a group, the group's members at that moment minus the sender.
// Members who join later are not recipients of the message; members who
// leave later stay recipients, so counts never move backwards.
//
// When a recipient has read messages, the host calls SendMessageReadReceipt
// with up to 30 messages of one conversation. Each new receipt is recorded
// once (a repeated receipt changes nothing), and the sender's side learns of
// it through the events of Subscribe: read and unread counts for a group
// message, isPeerRead for a C2C one.
//
// The sender reads counts with GetMessageReadReceiptList, and pages through
// the members who have or have not read a group message with
// GetGroupMessageReadMemberList. By default only the sender (and an
// administrator, see AsAdmin) may do so; WithQueryAccess widens that to every
// recipient.
//
// DeleteMessage drops a recalled message's state; retention (WithRetention,
// 30 days by default) drops old ones. Afterwards, and for messages never
// tracked (also those of a group the engine does not know, which it cannot
// tell from a dismissed one), every call answers ErrReceiptNotFound (10062). Note that the
// engine cannot tell a message that did not ask for a receipt from one it
// never heard of: both answer 10062.
//
// # Errors
//
// Every error is an *Error with a numeric code; compare with errors.Is
// against the sentinels (ErrReceiptNotFound and so on). Calls that handle
// several messages report per-message failures (an unknown message, a
// reader who is not a recipient, the sender's own message, a message the
// caller may not see) in their results, and fail as a whole only for bad
// input, limits, mixed conversations, the feature switch or a store
// failure. A call that fails as a whole records nothing.
//
// # Storage
//
// State lives in a store.Store: Pebble on disk by default (OpenDir), or any
// other backend (Open). Member sets are roaring bitmaps over dense
// per-group member indexes, cut into chunks of 65,536 indexes. Group
// membership is versioned: a membership change writes only the chunks it
// changes, and a message records the version it was tracked at instead of
// copying the member list. A receipt writes a four-byte delta to its
// message's reader chunk, folded by the store's merge operator, never a
// whole bitmap; a message whose recipients span several chunks also keeps a
// counter, so that its count is one lookup, while the count of any other
// is the size of its one chunk of readers. A set is stored as a roaring
// bitmap or as a plain bitset over its range, whichever is smaller: the
// readers of a message in a 200-member group take 28 bytes.
//
// # Concurrency
//
// An Engine is safe for concurrent use by many goroutines. Receipts, tracking
// and queries of one conversation run concurrently; membership changes,
// deletion and expiry of a conversation wait for the calls in progress on it
// and hold new ones back while they run. Concurrent receipts for one message
// are counted exactly: each reader once.
//
// # Durability
//
// By default every write is synced before the call returns: a receipt
// acknowledged by SendMessageReadReceipt survives a crash of the process or
// the machine. Concurrent calls share syncs (group commit), so throughput
// does not pay one sync per receipt. WithSyncWrites(false) trades that
// guarantee for latency: the last acknowledged writes may then be lost in a
// crash, though never applied in part. Reopening the engine on the same
// directory gives back every group, message, count, member list and
// cursor. A sweep deletes each expired message in a write of its own, so
// one cut short by a crash has deleted some and not others; the next sweep
// goes on with the rest.
//
// # Caveats
//
//   - One engine per store at a time: the engine keeps per-message state in
//     memory, in step with the store, and does not expect another writer.
//   - The engine keeps no conversation unread counts; receipts do not touch
//     them.
//   - Membership versions superseded while no live message needs them are
//     dropped at once; others are dropped by the sweep once the messages
//     that need them are gone. Between two live messages, a version that
//     neither needs is kept until the older message goes.
//   - A hot message's readers are rewritten whole every 1,024 receipts, so
//     that a cold read never folds many more deltas than that; the count of
//     deltas lives in the message's cached state, so a message evicted from
//     the cache between receipts (a cache far too small for the load, see
//     WithCacheBytes) leaves its deltas to the store's own compaction.
//   - Member indexes are 32-bit: a group can have had at most 2^32-1
//     distinct members over its life.
package readreceipt
