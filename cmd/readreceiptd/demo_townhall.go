package main

// The demo's town hall: a second group of a million members (issue 11),
// so that a person can watch read receipts in a group no commercial SDK
// lets them see.
//
// The group is created in the background, in slices: CreateGroup with the
// demo users and the first slice of the crowd, then AddGroupMembers one
// slice at a time, each a separate engine call, so that the demo chat's
// receipts interleave with the creation instead of waiting behind one
// two-million-key batch. The page polls GET /demo/townhall for progress.
//
// The crowd is simulated here: once a demo user has posted a message to
// the town hall, one goroutine sends the crowd's receipts for it, member
// after member, each through SendMessageReadReceipt as any reader's, at
// the rate the page sets (at most townMaxRate a second). Each receipt is
// one event on the sender's socket, which is what bounds the rate: the
// browser and the -event-queue keep up with a thousand a second with room
// to spare. One goroutine for the creation and one for the crowd, both
// stopped, and waited for, by the server's shutdown.
//
// Messages of the town hall are kept in memory only (the last
// townKeepMessages); the group and its receipts are in the engine and
// survive a restart, and a restarted server finishes a creation that was
// cut short.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/readreceipt/readreceipt"
)

const (
	// townGroupID is the town hall's group, of type Work.
	townGroupID = "townhall"
	// townSlice is how many members each engine call of the creation adds.
	townSlice = 10_000
	// townMaxRate bounds the crowd's receipts per second.
	townMaxRate = 1000
	// townDefaultRate is the crowd's rate until the page sets one.
	townDefaultRate = 200
	// townTick is how often the crowd sends its next batch of receipts.
	townTick = 50 * time.Millisecond
	// townKeepMessages is how many town hall messages are kept.
	townKeepMessages = 20
)

// Town hall states, as GET /demo/townhall names them.
const (
	townAbsent   = "absent"
	townCreating = "creating"
	townReady    = "ready"
	townFailed   = "failed"
)

// townMember returns the ID of the crowd's member i.
func townMember(i int) string { return fmt.Sprintf("crowd-%07d", i) }

// townHall is the town hall's state and its two goroutines.
type townHall struct {
	eng *readreceipt.Engine
	log *slog.Logger
	now func() time.Time
	// total is the group's size: the demo users and total-len(demoUsers)
	// crowd members.
	total int

	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	mu      sync.Mutex
	state   string
	members int
	err     string
	started time.Time
	took    time.Duration
	rate    int
	msgs    []demoMessage
	// target is the message the crowd reads, next the crowd member it
	// reads as next.
	target *demoMessage
	next   int
	// wake is signalled when the crowd has something new to do.
	wake chan struct{}
}

func newTownHall(s *server, total int) *townHall {
	ctx, stop := context.WithCancel(context.Background())
	t := &townHall{
		eng: s.eng, log: s.log, now: s.now, total: total,
		ctx: ctx, stop: stop,
		state: townAbsent, rate: townDefaultRate,
		wake: make(chan struct{}, 1),
	}
	t.wg.Add(1)
	go t.crowd()
	return t
}

// close stops the creation and the crowd and waits for them.
func (t *townHall) close() {
	t.stop()
	t.wg.Wait()
}

// townStatus is the answer of GET and POST /demo/townhall.
type townStatus struct {
	GroupID     string        `json:"groupID"`
	State       string        `json:"state"`
	MemberNum   int           `json:"memberNum"`
	Total       int           `json:"total"`
	Error       string        `json:"error,omitempty"`
	CreateMS    int64         `json:"createMillis"`
	Rate        int           `json:"rate"`
	MaxRate     int           `json:"maxRate"`
	MessageList []demoMessage `json:"messageList"`
}

func (t *townHall) status() townStatus {
	t.mu.Lock()
	defer t.mu.Unlock()
	took := t.took
	if t.state == townCreating {
		took = t.now().Sub(t.started)
	}
	return townStatus{
		GroupID: townGroupID, State: t.state, MemberNum: t.members, Total: t.total, Error: t.err,
		CreateMS: took.Milliseconds(), Rate: t.rate, MaxRate: townMaxRate,
		MessageList: slices.Clone(t.msgs),
	}
}

// open starts the creation unless it is under way or done; a failed one
// is started again.
func (t *townHall) open() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state == townCreating || t.state == townReady || t.ctx.Err() != nil {
		return
	}
	t.state, t.err, t.started = townCreating, "", t.now()
	t.wg.Add(1)
	go t.create()
}

// create makes the group, slice by slice, or finishes a group that a
// restart cut short (AddGroupMembers skips members already in it).
func (t *townHall) create() {
	defer t.wg.Done()
	err := t.build()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.took = t.now().Sub(t.started)
	switch {
	case err == nil:
		t.state = townReady
		t.log.Info("demo: town hall ready", "members", t.members, "took", t.took)
	case t.ctx.Err() != nil:
		t.state = townAbsent
	default:
		t.state, t.err = townFailed, err.Error()
		t.log.Error("demo: creating the town hall", "err", err)
	}
}

func (t *townHall) build() error {
	crowd := t.total - len(demoUsers)
	first := min(townSlice, crowd)
	members := make([]string, 0, len(demoUsers)+townSlice)
	members = append(members, demoUsers...)
	for i := range first {
		members = append(members, townMember(i))
	}
	from := first
	err := t.eng.CreateGroup(t.ctx, townGroupID, readreceipt.GroupWork, members)
	if errors.Is(err, readreceipt.ErrGroupExists) {
		info, gerr := t.eng.GetGroup(t.ctx, townGroupID)
		if gerr != nil {
			return gerr
		}
		if !slices.Contains(t.eng.GroupTypes(), info.Type) {
			return fmt.Errorf("group %q exists as a %s group, a type without read receipts", townGroupID, info.Type)
		}
		// Resume at the slice that holds the first missing member; the
		// demo users may have been added as a slice before.
		from = max(0, info.Members-len(demoUsers)) / townSlice * townSlice
		err = t.eng.AddGroupMembers(t.ctx, townGroupID, demoUsers)
	}
	if err != nil {
		return err
	}
	t.setMembers()
	for from < crowd {
		if t.ctx.Err() != nil {
			return t.ctx.Err()
		}
		n := min(townSlice, crowd-from)
		members = members[:0]
		for i := range n {
			members = append(members, townMember(from+i))
		}
		if err := t.eng.AddGroupMembers(t.ctx, townGroupID, members); err != nil {
			return err
		}
		from += n
		t.setMembers()
	}
	return nil
}

// setMembers records the group's size after a slice.
func (t *townHall) setMembers() {
	info, err := t.eng.GetGroup(t.ctx, townGroupID)
	if err != nil {
		return
	}
	t.mu.Lock()
	t.members = info.Members
	t.mu.Unlock()
}

// ready reports whether the group is complete, and finds a group that a
// previous run completed.
func (t *townHall) ready(ctx context.Context) bool {
	t.mu.Lock()
	state := t.state
	t.mu.Unlock()
	if state == townReady {
		return true
	}
	if state != townAbsent {
		return false
	}
	info, err := t.eng.GetGroup(ctx, townGroupID)
	if err != nil || info.Members < t.total {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state == townAbsent {
		t.state, t.members = townReady, info.Members
	}
	return t.state == townReady
}

func (t *townHall) setRate(rate int) {
	t.mu.Lock()
	t.rate = rate
	t.mu.Unlock()
	t.poke()
}

func (t *townHall) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// post keeps m and points the crowd at it.
func (t *townHall) post(m demoMessage) {
	t.mu.Lock()
	t.msgs = append(t.msgs, m)
	if len(t.msgs) > townKeepMessages {
		t.msgs = slices.Clone(t.msgs[len(t.msgs)-townKeepMessages:])
	}
	t.target, t.next = &m, 0
	t.mu.Unlock()
	t.poke()
}

// crowd sends the crowd's receipts for the latest message, rate a second,
// until every crowd member has read it or the server stops. Receipts not
// sent in a tick (the engine was slower than the rate) are not made up
// later: the budget of a tick never exceeds one tick's share.
func (t *townHall) crowd() {
	defer t.wg.Done()
	tick := time.NewTicker(townTick)
	defer tick.Stop()
	var carry float64
	for {
		t.mu.Lock()
		target, next, rate := t.target, t.next, t.rate
		t.mu.Unlock()
		crowd := t.total - len(demoUsers)
		if target == nil || next >= crowd || rate == 0 {
			carry = 0
			select {
			case <-t.ctx.Done():
				return
			case <-t.wake:
			}
			continue
		}
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
		}
		carry = min(carry+float64(rate)*townTick.Seconds(), float64(rate)*townTick.Seconds()+1)
		ref := []readreceipt.MessageRef{{Conversation: readreceipt.Group(townGroupID), ID: target.ID}}
		for ; carry >= 1 && next < crowd; carry-- {
			if t.ctx.Err() != nil {
				return
			}
			if _, err := t.eng.SendMessageReadReceipt(t.ctx, townMember(next), ref); err != nil {
				if t.ctx.Err() == nil {
					t.log.Error("demo: a crowd receipt", "err", err)
				}
				break
			}
			next++
		}
		t.mu.Lock()
		if t.target == target {
			t.next = next
		}
		t.mu.Unlock()
	}
}

// handleTownHall answers GET /demo/townhall with the town hall's status.
func (d *demo) handleTownHall(w http.ResponseWriter, r *http.Request) error {
	if _, err := d.demoIdentity(r, false); err != nil {
		return err
	}
	d.town.ready(r.Context())
	writeOK(w, d.town.status())
	return nil
}

// handleTownHallOpen answers POST /demo/townhall {"rate"?}: it starts the
// creation if the group is not there yet, sets the crowd's rate when one
// is given, and answers with the status.
func (d *demo) handleTownHallOpen(w http.ResponseWriter, r *http.Request) error {
	if _, err := d.demoIdentity(r, false); err != nil {
		return err
	}
	var req struct {
		Rate *int `json:"rate"`
	}
	if err := decode(w, r, &req, demoMaxBody); err != nil {
		return err
	}
	if req.Rate != nil {
		if *req.Rate < 0 || *req.Rate > townMaxRate {
			return badRequest("rate must be 0 to %d receipts a second, not %d", townMaxRate, *req.Rate)
		}
		d.town.setRate(*req.Rate)
	}
	if !d.town.ready(r.Context()) {
		d.town.open()
	}
	writeOK(w, d.town.status())
	return nil
}

// handleTownHallPost answers POST /demo/townhall/messages {"text"}: the
// token's user sends text to the town hall, asking for a receipt; the
// crowd starts reading it.
func (d *demo) handleTownHallPost(w http.ResponseWriter, r *http.Request) error {
	id, err := d.demoIdentity(r, false)
	if err != nil {
		return err
	}
	var req struct {
		Text string `json:"text"`
	}
	if err := decode(w, r, &req, demoMaxBody); err != nil {
		return err
	}
	text := strings.TrimSpace(req.Text)
	switch {
	case text == "":
		return badRequest("text is empty")
	case utf8.RuneCountInString(text) > demoMaxText:
		return badRequest("text is over %d characters", demoMaxText)
	}
	if !d.town.ready(r.Context()) {
		return &apiError{Status: http.StatusConflict, Code: readreceipt.CodeInvalidParameter,
			Message: "readreceiptd: the town hall is not ready yet"}
	}
	now := d.s.now()
	msgID, err := newDemoMessageID(now)
	if err != nil {
		return err
	}
	m := demoMessage{ID: msgID, ConversationType: convGroup, To: townGroupID, From: id.UserID, Text: text, Time: now.Unix(), NeedReadReceipt: true}
	if err := d.s.eng.TrackMessage(r.Context(), readreceipt.Message{Conversation: readreceipt.Group(townGroupID), ID: m.ID, Sender: m.From}); err != nil {
		return err
	}
	d.town.post(m)
	writeOK(w, m)
	return nil
}
