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
// A membership change of more than about 4 MB of keys (CreateGroup or
// AddGroupMembers of some 150,000 members and more) goes to a store that
// implements store.Ingester as an ingestion, not a Write: Pebble takes it
// as a table of its own, outside its write-ahead log, so durable receipts
// written meanwhile do not queue behind its bytes. It is atomic and synced
// like any other write (even under WithSyncWrites(false)).
//
// # Several hosts
//
// OpenRedis puts the engine's state in Redis, standalone or Cluster, so
// that the host servers of a replica set, each with its engine, share one
// state: N engines give exactly the answers one would. Each receipt is
// recorded once whichever engine it came through (a receipt sets the
// reader's bit and counts it only if it was clear, in one atomic function
// on the slot of its conversation); member indexes are assigned atomically
// on the group's slot; member pages and cursors are the same from every
// engine. An engine caches only what never changes once written: member
// indexes, membership snapshots by version, and message metas, whose every
// use is checked against Redis.
//
// Events cross hosts: the events of a receipt recorded through one engine
// reach the subscribers of every engine sharing the state (Subscribe),
// those of other engines a few milliseconds later, at most once. Events
// published while an engine's connection to Redis is cut are lost; clients
// refresh counts after a reconnect.
//
// A call succeeds only once its writes reached at least one replica, where
// the master has one (WAIT on the connection that carried them). With
// appendonly yes and appendfsync always (recommended) on every node, a
// master killed with kill -9 and replaced by its replica loses no
// acknowledged receipt. A double failure (the master and its replica, or a
// master without a replica and without appendfsync always) may lose
// acknowledged writes. While Redis is unreachable or failing over, calls
// touching the affected slots fail with ErrUnavailable (retryable; a call
// that failed so may or may not have been applied, and receipts are
// idempotent) and succeed again by themselves once the slots have a
// master.
//
// Retention on Redis: message keys expire with the retention, by Redis's
// clock, so Sweep has nothing to do there; expiry as callers see it is
// judged by the engine's clock, as on the embedded backend. Membership
// snapshots superseded after a message was tracked expire with the
// retention too, or, with retention 0, stay until the group is dismissed.
// CreateGroup and DismissGroup of a huge group run in slices of a few
// thousand members, so that no single call blocks a shard for long; the
// group is invisible until its creation completes, and one whose creation
// or dismissal was cut short is finished by the next DismissGroup (or, for
// a dismissal, CreateGroup) of its ID.
//
// # Beyond the seed
//
// Five features extend the receipt model. A message that uses none of them
// costs what it cost before: no extra keys, no extra writes on the read
// path.
//
// Delivery receipts. SendMessageDeliveryReceipt records that a recipient's
// device received messages (up to 30 of one conversation, with the
// per-message outcomes of SendMessageReadReceipt). Reading implies
// delivered: DeliveredCount is the readers plus the recipients delivered to
// without a public read, UndeliveredCount the rest, and a delivery after a
// read, or a second one, records nothing. Each new delivery sends the
// sender an event of Kind EventDelivered; member pages list FilterDelivered
// and FilterUndelivered. A message keeps its deliveries as a second set
// beside its readers, and a counter of those not also readers: the first
// delivery of a message adds that set and counter, a read of a delivered
// recipient moves one count from the counter to the readers.
//
// Read marks. MarkConversationRead records that a reader has read a
// conversation, or one of its threads (Message.Thread), up to a message or
// a time: a read receipt, exactly as SendMessageReadReceipt would record it,
// for every message tracked after the reader's previous mark and at or
// before the new one. Messages are ordered by when they were tracked, to
// the microsecond, then by ID; a mark at a time is after every message of
// that microsecond, and a time later than now marks up to now. Marks never
// move back, and move only once the receipts are durable, so a call cut
// short is finished by repeating it. A thread's mark and its
// conversation's are kept apart; a conversation's mark goes through its
// threads' messages too. Every tracked message takes one order entry (two
// in a thread), removed with the message (on Redis, an expired message's
// entry goes at a later tracking or mark); a mark costs one key per reader
// and thread, and a call costs the messages since the previous mark, not
// the conversation's history. A group's marks go with the group, and a
// group that is not there takes none (ErrGroupNotFound).
//
// Private receipts. While SetReceiptsPrivate is on for a user, the user's
// reads are recorded for the user's own state only: they count as
// delivered, never as read, in counts, member lists, read times and events.
// Delivery is never private. Switching never rewrites the past: reads
// recorded publicly stay public, reads recorded privately stay private
// until the user reads the message again with privacy off. With
// WithReciprocalPrivacy, a user whose receipts are private sees nobody's
// reads either (ErrPrivateReceipts, no read events). The setting is one
// key per user, read on every read receipt call: cached in memory on the
// embedded backend, one GET on Redis so that it holds on every engine at
// once.
//
// Own read state. GetMessageReadState gives a user's own state of messages
// (read, privately or not, delivered, and the read time where kept), so
// that the user's other devices show the same, and SubscribeOwnReads tells
// them of every call that recorded a read (an OwnReadEvent, with the mark
// for MarkConversationRead; on Redis across engines).
//
// Read times. C2C read times are kept as before. With WithReadTimes, a
// group message also keeps when each member read it, to the second: one
// appendable log per message, 2 to 7 bytes a read (see WithReadTimes), returned
// with FilterRead pages (MemberPage.ReadTimes) and by GetMessageReadTimes,
// and in the reader's own state (private reads there only). Reads recorded
// while it was off have no time.
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
//   - One engine per store at a time (Open, OpenDir): the embedded backend
//     keeps per-message state in memory, in step with the store, and does
//     not expect another writer; OpenDir refuses a second engine on a
//     directory (Pebble locks it). To run several engines on one state, use
//     OpenRedis.
//   - The engine keeps no conversation unread counts; receipts do not touch
//     them.
//   - Membership versions superseded while no live message needs them are
//     dropped at once; others are dropped by the sweep once the messages
//     that need them are gone. Between two live messages, a version that
//     neither needs is kept until the older message goes.
//   - On the embedded store a receipt call is made durable by one record in
//     a receipt log, not by a write per receipt; the log is folded into the
//     per-message state in the background (every 100 ms, or once 131,072
//     receipts wait), before messages are deleted, on Check and on Close,
//     and on Open after a crash. A message with receipts not folded yet
//     stays in the cache whatever WithCacheBytes says, so the cache can
//     exceed its bound by what 100 ms of receipts touch.
//   - A hot message's readers are rewritten whole once folds have added
//     1,024 deltas to them, so that a cold read never folds many more
//     deltas than that; the count of deltas lives in the message's cached
//     state, so a message evicted from the cache between receipts (a cache
//     far too small for the load, see WithCacheBytes) leaves its deltas to
//     the store's own compaction. A message of a group too big for one
//     chunk of members is rewritten whole only by a fold that holds every
//     receipt committed to it, which a message taking receipts from many
//     callers at once may wait for.
//   - Member indexes are 32-bit: a group can have had at most 2^32-1
//     distinct members over its life.
package readreceipt
