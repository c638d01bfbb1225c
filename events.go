package readreceipt

import (
	"sync"
	"sync/atomic"
	"time"
)

// ReceiptEvent tells a message's sender that a receipt was recorded: the
// engine's form of the SDK's MESSAGE_READ_RECEIPT_RECEIVED event. It carries
// the message's counts as they are once the receipt is durable.
type ReceiptEvent struct {
	// Kind is EventRead (a read receipt) or EventDelivered (a delivery).
	Kind EventKind
	// Sender is the sender of the message: the user whose clients the host
	// should notify.
	Sender string
	// Conversation is the message's conversation.
	Conversation Conversation
	// GroupID is the group of a group message; empty for C2C.
	GroupID string
	// UserID is, for a C2C message, its recipient (who has now read it);
	// empty for a group message, as in the SDK.
	UserID string
	// MessageID is the message's ID.
	MessageID string
	// ReadCount and UnreadCount are the message's counts; they add up to its
	// number of recipients (1 for C2C).
	ReadCount   int
	UnreadCount int
	// DeliveredCount and UndeliveredCount are the message's delivery
	// counts (reading implies delivered); they add up to its recipients.
	DeliveredCount   int
	UndeliveredCount int
	// IsPeerRead reports, for a C2C message, that the peer has read it;
	// IsPeerDelivered that it reached the peer.
	IsPeerRead      bool
	IsPeerDelivered bool
	// ReadTime is, for a C2C message, when the receipt was recorded (the
	// SDK's timestamp); zero for group messages.
	ReadTime time.Time
	// Reader is the user whose receipt caused the event.
	Reader string
}

// newEvent makes the event of a receipt of kind k, from the message's meta
// and counts afterwards: count readers, delivered = count plus the
// recipients delivered to without a public read.
func newEvent(k EventKind, conv Conversation, meta messageRecord, reader, msgID string, count, delivered, readAt int64) ReceiptEvent {
	ev := ReceiptEvent{
		Kind:             k,
		Sender:           meta.Sender,
		Conversation:     conv,
		MessageID:        msgID,
		ReadCount:        int(count),
		UnreadCount:      int(int64(meta.Recipients) - count),
		DeliveredCount:   int(delivered),
		UndeliveredCount: int(int64(meta.Recipients) - delivered),
		Reader:           reader,
	}
	if conv.Type == ConversationGroup {
		ev.GroupID = conv.GroupID
	} else {
		ev.UserID = conv.other(meta.Sender)
		ev.IsPeerRead = count > 0
		ev.IsPeerDelivered = delivered > 0
		ev.ReadTime = readTime(conv, count, readAt)
	}
	return ev
}

// Subscribe registers fn to receive the events of every receipt the engine
// records, in batches: one call per SendMessageReadReceipt that recorded
// something, holding that call's events in message order. fn runs on the
// goroutine of that call, after the receipts are durable and before the call
// returns, holding no lock of the engine's: it may call the engine, but it
// delays the receipt call while it runs. Events of
// concurrent calls may reach fn concurrently and, for one message, in either
// order; each carries the counts as they stood when it was made, and counts
// never decrease. Calls already in progress when fn subscribes may not
// reach it. The returned function unsubscribes fn.
//
// On Redis (OpenRedis), fn also receives the events of receipts recorded
// through the other engines sharing the state, on a goroutine of the
// engine's, a few milliseconds after they were recorded, at most once (see
// "Several hosts" in the package documentation).
func (e *Engine) Subscribe(fn func(events []ReceiptEvent)) (unsubscribe func()) {
	unsubscribe = e.subs.add(fn)
	e.be.listen()
	return unsubscribe
}

type subscribers[T any] struct {
	mu   sync.RWMutex
	next int
	list []subscriber[T]
	n    atomic.Int32 // len(list), read without mu: calls make no events for nobody
}

// any reports whether anyone is subscribed.
func (s *subscribers[T]) any() bool { return s.n.Load() > 0 }

type subscriber[T any] struct {
	id int
	fn func([]T)
}

func (s *subscribers[T]) add(fn func([]T)) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next++
	id := s.next
	s.list = append(s.list, subscriber[T]{id: id, fn: fn})
	s.n.Store(int32(len(s.list)))
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			for i, sub := range s.list {
				if sub.id == id {
					s.list = append(s.list[:i:i], s.list[i+1:]...)
					s.n.Store(int32(len(s.list)))
					return
				}
			}
		})
	}
}

func (s *subscribers[T]) publish(events []T) {
	s.mu.RLock()
	list := s.list
	s.mu.RUnlock()
	for _, sub := range list {
		sub.fn(events)
	}
}
