package main

// Demo mode: the web page at / and the /demo/ endpoints behind it.
//
// Demo mode is on by default (-demo=false turns it off) so that
// `go run ./cmd/readreceiptd` shows the engine at work in a browser. It
// exists only for that: POST /demo/login hands a token to anyone who names
// one of the demo users, with no password. A server that faces real users
// runs with -demo=false, and then none of this is registered: a host signs
// its own users' tokens (see the token subcommand).
//
// The engine keeps no message bodies, as the host owns them. In demo mode
// the server plays that host for one group: it keeps the demo group's last
// demoKeep messages in an append-only JSON-lines file in the data directory,
// so that a restart keeps the chat, and tracks in the engine the ones that
// ask for a receipt.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/readreceipt/readreceipt"
)

const (
	// demoGroupID is the demo group, of type Work.
	demoGroupID = "demo"
	// demoMessagesFile is the name, inside the data directory, of the file
	// that keeps the demo group's messages.
	demoMessagesFile = "demo-messages.jsonl"
	// demoKeep is how many of the latest demo messages are kept.
	demoKeep = 200
	// demoTokenTTL is how long a demo login's token is valid.
	demoTokenTTL = 24 * time.Hour
	// demoMaxText bounds a demo message's text, in characters.
	demoMaxText = 1000
	// demoMaxBody bounds the request bodies of the /demo/ endpoints.
	demoMaxBody = 16 << 10
)

// CodeDemoUser is the code of a demo call by a user who is not one of the
// demo users (HTTP 403).
const CodeDemoUser = 70101

// demoUsers are the members of the demo group, in the order the page lists
// them.
var demoUsers = []string{"alice", "bob", "carol", "dave", "erin", "frank"}

// webFiles is the demo page: plain HTML, CSS and JavaScript, served as they
// are.
//
//go:embed web
var webFiles embed.FS

// demoMessage is one message of the demo chat, in the shape of the SDK's
// Message plus its text. Time is in Unix seconds, as in the SDK.
type demoMessage struct {
	ID               string `json:"ID"`
	ConversationType string `json:"conversationType"`
	To               string `json:"to"`
	From             string `json:"from"`
	Text             string `json:"text"`
	Time             int64  `json:"time"`
	NeedReadReceipt  bool   `json:"needReadReceipt"`
}

// demo serves the demo page and the /demo/ endpoints.
type demo struct {
	s      *server
	chat   *demoChat
	static map[string]staticFile
	// town is the town hall, nil when -demo-town-hall is 0.
	town *townHall
}

// registerDemo makes sure the demo group exists with every demo user in it,
// loads the demo chat from the data directory and registers the page and
// the /demo/ endpoints on mux.
func (s *server) registerDemo(mux *http.ServeMux) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := ensureDemoGroup(ctx, s.eng); err != nil {
		return err
	}
	chat, err := openDemoChat(filepath.Join(s.cfg.DataDir, demoMessagesFile), s.log)
	if err != nil {
		return err
	}
	static, err := loadStatic(webFiles, "web")
	if err != nil {
		return err
	}
	d := &demo{s: s, chat: chat, static: static}
	if s.cfg.DemoTownHall > 0 {
		d.town = newTownHall(s, s.cfg.DemoTownHall)
		s.closers = append(s.closers, d.town.close)
	}
	handle := func(pattern string, h handler) { mux.Handle(pattern, s.serveEndpoint(h)) }
	handle("GET /{$}", d.handleIndex)
	handle("GET /web/{file...}", d.handleStatic)
	handle("GET /demo/users", d.handleUsers)
	handle("POST /demo/login", d.handleLogin)
	handle("GET /demo/messages", d.handleList)
	handle("POST /demo/messages", d.handlePost)
	handle("GET /demo/stream", d.handleStream)
	if d.town != nil {
		handle("GET /demo/townhall", d.handleTownHall)
		handle("POST /demo/townhall", d.handleTownHallOpen)
		handle("POST /demo/townhall/messages", d.handleTownHallPost)
	}
	return nil
}

// ensureDemoGroup creates the demo group, or adds to it the demo users it
// lacks. It fails if a group of that ID exists with a type that does not
// support read receipts.
func ensureDemoGroup(ctx context.Context, eng *readreceipt.Engine) error {
	err := eng.CreateGroup(ctx, demoGroupID, readreceipt.GroupWork, demoUsers)
	if errors.Is(err, readreceipt.ErrGroupExists) {
		err = eng.AddGroupMembers(ctx, demoGroupID, demoUsers)
	}
	if err != nil {
		return fmt.Errorf("demo group %q: %w", demoGroupID, err)
	}
	info, err := eng.GetGroup(ctx, demoGroupID)
	if err != nil {
		return fmt.Errorf("demo group %q: %w", demoGroupID, err)
	}
	if !slices.Contains(eng.GroupTypes(), info.Type) {
		return fmt.Errorf("demo group %q is a %s group, a type without read receipts: run with -demo=false", demoGroupID, info.Type)
	}
	return nil
}

// isDemoUser reports whether user is one of the demo users.
func isDemoUser(user string) bool {
	return slices.Contains(demoUsers, user)
}

func errDemoUser(user string) error {
	return &apiError{
		Status:  http.StatusForbidden,
		Code:    CodeDemoUser,
		Message: fmt.Sprintf("readreceiptd: %q is not a demo user (demo users: %s)", user, strings.Join(demoUsers, ", ")),
	}
}

// demoIdentity authenticates r and requires a demo user's token.
func (d *demo) demoIdentity(r *http.Request, fromQuery bool) (identity, error) {
	id, err := d.s.authenticate(r, fromQuery)
	if err != nil {
		return identity{}, err
	}
	if !isDemoUser(id.UserID) {
		return identity{}, errDemoUser(id.UserID)
	}
	return id, nil
}

func (d *demo) handleUsers(w http.ResponseWriter, r *http.Request) error {
	townHall := ""
	if d.town != nil {
		townHall = townGroupID
	}
	writeOK(w, map[string]any{"groupID": demoGroupID, "users": demoUsers, "townHall": townHall})
	return nil
}

// handleLogin answers POST /demo/login {"userID"} with a token for a demo
// user: {"userID","userToken"}. It never hands out the administrator's
// token: config.validate refuses an -admin that names a demo user, and the
// check here holds even so.
func (d *demo) handleLogin(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		UserID string `json:"userID"`
	}
	if err := decode(w, r, &req, demoMaxBody); err != nil {
		return err
	}
	if !isDemoUser(req.UserID) || req.UserID == d.s.cfg.Admin {
		return errDemoUser(req.UserID)
	}
	writeOK(w, map[string]string{
		"userID":    req.UserID,
		"userToken": d.s.mintToken(req.UserID, min(demoTokenTTL, d.s.cfg.MaxTokenTTL)),
	})
	return nil
}

// handlePost answers POST /demo/messages {"text","needReadReceipt"}: it
// sends text to the demo group as the token's user, tracking it in the
// engine when it asks for a receipt, and returns the message.
func (d *demo) handlePost(w http.ResponseWriter, r *http.Request) error {
	id, err := d.demoIdentity(r, false)
	if err != nil {
		return err
	}
	var req struct {
		Text            string `json:"text"`
		NeedReadReceipt bool   `json:"needReadReceipt"`
	}
	if err := decode(w, r, &req, demoMaxBody); err != nil {
		return err
	}
	text := strings.TrimSpace(req.Text)
	switch {
	case text == "":
		return badRequest("text is empty")
	case !utf8.ValidString(text):
		return badRequest("text is not UTF-8")
	case utf8.RuneCountInString(text) > demoMaxText:
		return badRequest("text is over %d characters", demoMaxText)
	}
	now := d.s.now()
	msgID, err := newDemoMessageID(now)
	if err != nil {
		return err
	}
	m := demoMessage{
		ID:               msgID,
		ConversationType: "GROUP",
		To:               demoGroupID,
		From:             id.UserID,
		Text:             text,
		Time:             now.Unix(),
		NeedReadReceipt:  req.NeedReadReceipt,
	}
	tracked := readreceipt.Message{Conversation: readreceipt.Group(demoGroupID), ID: m.ID, Sender: m.From}
	if m.NeedReadReceipt {
		if err := d.s.eng.TrackMessage(r.Context(), tracked); err != nil {
			return err
		}
	}
	if err := d.chat.append(m); err != nil {
		d.s.log.Error("demo: storing a message", "err", err)
		if m.NeedReadReceipt {
			// Nobody will ever see the message: drop its receipt state.
			if derr := d.s.eng.DeleteMessage(context.WithoutCancel(r.Context()), tracked.Ref()); derr != nil {
				d.s.log.Error("demo: dropping an unstored message", "id", m.ID, "err", derr)
			}
		}
		return &apiError{Status: http.StatusInternalServerError, Code: readreceipt.CodeInternal, Message: "readreceiptd: cannot store the message"}
	}
	writeOK(w, m)
	return nil
}

// handleList answers GET /demo/messages with {"groupID","messageList"}: the
// kept messages, oldest first. With after=<ID> it lists only the messages
// after that one (all of them if it is no longer kept).
func (d *demo) handleList(w http.ResponseWriter, r *http.Request) error {
	if _, err := d.demoIdentity(r, false); err != nil {
		return err
	}
	msgs, _ := d.chat.since(r.URL.Query().Get("after"))
	writeOK(w, map[string]any{"groupID": demoGroupID, "messageList": msgs})
	return nil
}

// demoStreamEvent is the event of the demo stream: new messages of the demo
// group, oldest first.
const demoStreamEvent = "DEMO_MESSAGES"

type demoStreamMessage struct {
	Event string        `json:"event"`
	Data  []demoMessage `json:"data"`
}

// handleStream serves GET /demo/stream?token=<token>[&after=<ID>]: a
// WebSocket on which a demo user receives the demo group's new messages,
// {"event":"DEMO_MESSAGES","data":[message...]}, starting with those after
// the message after (all kept messages for "" or an ID no longer kept).
//
// A WebSocket rather than a long poll: browsers allow a handful of HTTP/1.1
// connections per server across all tabs, and a demo is often tried with a
// tab per user.
//
// At shutdown the stream is closed with StatusGoingAway within a quarter
// of a second of the server's stopping flag. Graceful shutdown does not
// wait for it (http.Server does not track hijacked connections, and the
// event hub's wait covers only its own); the stream uses nothing that
// shutdown closes.
func (d *demo) handleStream(w http.ResponseWriter, r *http.Request) error {
	id, err := d.demoIdentity(r, true)
	if err != nil {
		return err
	}
	if d.s.stopping.Load() {
		return errHubClosed
	}
	if err := checkHandshake(r); err != nil {
		return err
	}
	conn, err := d.s.acceptWebSocket(w, r)
	if err != nil {
		d.s.log.Info("demo stream: upgrade failed", "user", id.UserID, "err", err)
		return nil
	}
	defer conn.CloseNow()
	// The client sends nothing; ctx ends when the connection does.
	ctx := conn.CloseRead(context.Background())
	after := r.URL.Query().Get("after")
	// The server's shutdown flag is looked at now and then, so that an open
	// stream does not hold up a graceful shutdown.
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	ping := time.NewTicker(eventPingInterval)
	defer ping.Stop()
	for {
		msgs, changed := d.chat.since(after)
		if len(msgs) > 0 {
			b, err := json.Marshal(demoStreamMessage{Event: demoStreamEvent, Data: msgs})
			if err != nil {
				conn.Close(websocket.StatusInternalError, "cannot encode messages")
				return nil
			}
			wctx, cancel := context.WithTimeout(ctx, eventWriteTimeout)
			err = conn.Write(wctx, websocket.MessageText, b)
			cancel()
			if err != nil {
				return nil
			}
			after = msgs[len(msgs)-1].ID
		}
		select {
		case <-changed:
		case <-tick.C:
			if d.s.stopping.Load() {
				conn.Close(websocket.StatusGoingAway, "server shutting down")
				return nil
			}
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, eventWriteTimeout)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return nil
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// newDemoMessageID returns a new message ID: the time in milliseconds and
// 48 random bits, so that IDs stay unique across restarts.
func newDemoMessageID(now time.Time) (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("message ID: %w", err)
	}
	return "d" + strconv.FormatInt(now.UnixMilli(), 36) + "-" + hex.EncodeToString(b[:]), nil
}

// demoChat keeps the demo group's latest messages, in memory and in an
// append-only JSON-lines file that is rewritten with only the kept messages
// when it has grown to twice their number.
type demoChat struct {
	path string
	log  *slog.Logger

	mu sync.Mutex
	// msgs are the kept messages, oldest first. Its elements are never
	// changed, so callers may keep copies of sub-slices.
	msgs []demoMessage
	// lines counts the lines of the file.
	lines int
	// changed is closed, and replaced, when a message is added.
	changed chan struct{}
}

// openDemoChat loads the messages kept in path, if it exists. A line that
// does not decode (a write cut short by a crash) is dropped, and the file
// is then rewritten clean.
func openDemoChat(path string, logger *slog.Logger) (*demoChat, error) {
	c := &demoChat{path: path, log: logger, changed: make(chan struct{})}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("demo messages: %w", err)
	}
	clean := len(data) == 0 || data[len(data)-1] == '\n'
	for line := range bytes.Lines(data) {
		c.lines++
		var m demoMessage
		if err := json.Unmarshal(line, &m); err != nil || m.ID == "" {
			logger.Warn("demo: dropping a damaged line of the message file", "path", path, "line", c.lines)
			clean = false
			continue
		}
		c.msgs = append(c.msgs, m)
	}
	if len(c.msgs) > demoKeep {
		c.msgs = slices.Clone(c.msgs[len(c.msgs)-demoKeep:])
	}
	if !clean || c.lines > 2*demoKeep {
		if err := c.rewrite(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// append adds m to the chat and its file.
func (c *demoChat) append(m demoMessage) error {
	line, err := json.Marshal(m)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	f, err := os.OpenFile(c.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("demo messages: %w", err)
	}
	_, werr := f.Write(append(line, '\n'))
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("demo messages: %w", werr)
	}
	c.lines++
	c.msgs = append(c.msgs, m)
	if len(c.msgs) > demoKeep {
		c.msgs = slices.Clone(c.msgs[len(c.msgs)-demoKeep:])
	}
	close(c.changed)
	c.changed = make(chan struct{})
	if c.lines > 2*demoKeep {
		// The message is stored either way; a failed rewrite is tried
		// again at the next message.
		if err := c.rewrite(); err != nil {
			c.log.Warn("demo: compacting the message file", "err", err)
		}
	}
	return nil
}

// rewrite replaces the file by one that holds only the kept messages.
// It is called with c.mu held, or before c is shared.
func (c *demoChat) rewrite() error {
	var buf bytes.Buffer
	for _, m := range c.msgs {
		line, err := json.Marshal(m)
		if err != nil {
			return err
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("demo messages: %w", err)
	}
	if err := os.Rename(tmp, c.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("demo messages: %w", err)
	}
	c.lines = len(c.msgs)
	return nil
}

// since returns the kept messages after the one with ID after (all of them
// for "" or an ID no longer kept), and a channel closed when a message is
// added after them.
func (c *demoChat) since(after string) ([]demoMessage, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	msgs := c.msgs
	if after != "" {
		if i := slices.IndexFunc(msgs, func(m demoMessage) bool { return m.ID == after }); i >= 0 {
			msgs = msgs[i+1:]
		}
	}
	return slices.Clone(msgs), c.changed
}

// staticFile is one embedded file of the page, with the headers it is
// served with.
type staticFile struct {
	body        []byte
	contentType string
	etag        string
}

// staticTypes are the content types of the page's files, by extension.
// They are fixed here rather than taken from the system's MIME table,
// which differs between machines.
var staticTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
}

// loadStatic reads every file under dir of fsys.
func loadStatic(fsys fs.FS, dir string) (map[string]staticFile, error) {
	files := map[string]staticFile{}
	err := fs.WalkDir(fsys, dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		body, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		typ, ok := staticTypes[path.Ext(p)]
		if !ok {
			return fmt.Errorf("demo page: no content type for %s", p)
		}
		sum := sha256.Sum256(body)
		files[strings.TrimPrefix(p, dir+"/")] = staticFile{
			body:        body,
			contentType: typ,
			etag:        `"` + hex.EncodeToString(sum[:8]) + `"`,
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("demo page: %w", err)
	}
	if _, ok := files["index.html"]; !ok {
		return nil, errors.New("demo page: index.html is missing")
	}
	return files, nil
}

// pageCSP keeps the page to its own scripts, styles and origin.
const pageCSP = "default-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (d *demo) handleIndex(w http.ResponseWriter, r *http.Request) error {
	return d.serveStatic(w, r, "index.html")
}

func (d *demo) handleStatic(w http.ResponseWriter, r *http.Request) error {
	return d.serveStatic(w, r, r.PathValue("file"))
}

// serveStatic serves the embedded file name, or a 404 error in the API's
// shape.
func (d *demo) serveStatic(w http.ResponseWriter, r *http.Request, name string) error {
	f, ok := d.static[name]
	if !ok {
		return &apiError{
			Status:  http.StatusNotFound,
			Code:    readreceipt.CodeInvalidParameter,
			Message: fmt.Sprintf("readreceiptd: no file %s", r.URL.Path),
		}
	}
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	h.Set("ETag", f.etag)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	if name == "index.html" {
		h.Set("Content-Security-Policy", pageCSP)
		h.Set("Referrer-Policy", "no-referrer")
	}
	// ServeContent answers If-None-Match with 304 and handles ranges.
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.body))
	return nil
}
