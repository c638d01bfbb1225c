package readreceipt

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"hash/fnv"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Events across hosts.
//
// An engine on Redis delivers the events of the receipts it records to its
// own subscribers as the embedded one does (on the receipt call's
// goroutine, once the receipts are durable), and then publishes them on
// Redis, so that the engines of other hosts deliver them to theirs: a
// sender connected to host A learns of a receipt recorded through host B.
// The channels are sharded pub/sub channels (SPUBLISH), one of
// redisEventChannels by a hash of the sender, so that the traffic spreads
// over the masters; every engine with subscribers listens on all of them
// and skips what it published itself.
//
// Delivery to other hosts is at most once: Redis pub/sub keeps nothing for
// a listener that is not connected, so events published while an engine's
// subscription is cut (a failover of the channel's master, a network
// failure) are lost, and so are events beyond the publish queue when Redis
// cannot keep up, and events on a channel that had no listener in the last
// second (an engine publishes nothing to a channel nobody listens on, and
// checks again a second later). Clients refresh counts after a reconnect.
//
// A message on a channel is JSON: the publishing engine's origin and either
// receipt events (every field of ReceiptEvent: its kind, read and delivered
// counts), on the channel of their senders, or a user's own read events
// (OwnReadEvent), on the channel of that reader, for the engines that serve
// the reader's other devices.

// redisEventChannels is the number of event channels.
const redisEventChannels = 16

// redisQuietFor is how long a channel that had no listener is not
// published to: an engine that starts listening may miss the events of
// that long (delivery is at most once).
const redisQuietFor = time.Second

// redisPublishQueue bounds the event batches waiting to be published.
const redisPublishQueue = 4096

type redisEvents struct {
	b      *redisBackend
	origin string // this engine's ID, to skip its own events

	queue chan redisEventBatch
	stop  chan struct{}
	done  sync.WaitGroup

	mu        sync.Mutex
	listening bool
	subs      []*redis.PubSub

	// quiet[k], owned by the publisher, is until when channel k is known
	// to have no listener: SPUBLISH answers how many received a message,
	// and publishing to nobody costs Redis for nothing.
	quiet [redisEventChannels]time.Time
}

type redisEventBatch struct {
	k       int
	payload []byte
}

type redisEventMessage struct {
	Origin string         `json:"o"`
	Events []ReceiptEvent `json:"e,omitempty"`
	Own    []OwnReadEvent `json:"w,omitempty"`
}

func newRedisEvents(b *redisBackend) *redisEvents {
	var id [8]byte
	_, _ = rand.Read(id[:])
	ev := &redisEvents{b: b, origin: hex.EncodeToString(id[:]), queue: make(chan redisEventBatch, redisPublishQueue), stop: make(chan struct{})}
	ev.done.Add(1)
	go ev.publisher()
	return ev
}

func (ev *redisEvents) channel(k int) string {
	return ev.b.p + "ev{" + strconv.Itoa(k) + "}"
}

func senderChannel(sender string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(sender))
	return int(h.Sum32() % redisEventChannels)
}

// publish queues events and own read events for the other engines, by
// channel (the sender's, the reader's); a full queue drops them (delivery
// is at most once).
func (ev *redisEvents) publish(events []ReceiptEvent, own []OwnReadEvent) {
	byChannel := map[int][]ReceiptEvent{}
	for _, e := range events {
		k := senderChannel(e.Sender)
		byChannel[k] = append(byChannel[k], e)
	}
	for k, evs := range byChannel {
		ev.enqueue(k, redisEventMessage{Origin: ev.origin, Events: evs})
	}
	ownByChannel := map[int][]OwnReadEvent{}
	for _, o := range own {
		k := senderChannel(o.UserID)
		ownByChannel[k] = append(ownByChannel[k], o)
	}
	for k, evs := range ownByChannel {
		ev.enqueue(k, redisEventMessage{Origin: ev.origin, Own: evs})
	}
}

func (ev *redisEvents) enqueue(k int, m redisEventMessage) {
	payload, err := json.Marshal(m)
	if err != nil {
		return
	}
	select {
	case ev.queue <- redisEventBatch{k: k, payload: payload}:
	default:
	}
}

func (ev *redisEvents) publisher() {
	defer ev.done.Done()
	ctx := context.Background()
	for {
		select {
		case <-ev.stop:
			return
		case m := <-ev.queue:
			if time.Now().Before(ev.quiet[m.k]) {
				continue
			}
			if n, err := ev.b.c.SPublish(ctx, ev.channel(m.k), m.payload).Result(); err == nil && n == 0 {
				ev.quiet[m.k] = time.Now().Add(redisQuietFor)
			}
		}
	}
}

// listen subscribes to every event channel, once.
func (ev *redisEvents) listen() {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if ev.listening {
		return
	}
	ev.listening = true
	ctx := context.Background()
	var groups [][]string
	if _, ok := ev.b.c.(*redis.ClusterClient); ok {
		for k := range redisEventChannels {
			groups = append(groups, []string{ev.channel(k)}) // one slot per subscription
		}
	} else {
		var all []string
		for k := range redisEventChannels {
			all = append(all, ev.channel(k))
		}
		groups = [][]string{all}
	}
	for _, chans := range groups {
		ps := ev.b.c.SSubscribe(ctx, chans...)
		ev.subs = append(ev.subs, ps)
		ev.done.Add(1)
		go ev.receive(ps)
	}
}

func (ev *redisEvents) receive(ps *redis.PubSub) {
	defer ev.done.Done()
	for m := range ps.Channel() {
		var msg redisEventMessage
		if err := json.Unmarshal([]byte(m.Payload), &msg); err != nil || msg.Origin == ev.origin {
			continue
		}
		if len(msg.Events) > 0 {
			ev.b.subs.publish(msg.Events)
		}
		if len(msg.Own) > 0 {
			ev.b.own.publish(msg.Own)
		}
	}
}

func (ev *redisEvents) close() {
	close(ev.stop)
	ev.mu.Lock()
	for _, ps := range ev.subs {
		_ = ps.Close()
	}
	ev.mu.Unlock()
	ev.done.Wait()
}
