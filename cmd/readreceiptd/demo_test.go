package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/readreceipt/readreceipt"
)

// demoResp is a decoded API response.
type demoResp struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

// demoCall sends a request with an optional bearer token and JSON body and
// decodes the API response.
func demoCall(t testing.TB, method, url, token string, body any) (int, demoResp) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	var r demoResp
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("%s %s: answer is not JSON (%v): %s", method, url, err, raw)
	}
	return res.StatusCode, r
}

// demoOK calls the API, requires success and decodes the data into out.
func demoOK(t testing.TB, method, url, token string, body, out any) {
	t.Helper()
	status, r := demoCall(t, method, url, token, body)
	if status != http.StatusOK || r.Code != 0 {
		t.Fatalf("%s %s: status %d, code %d: %s", method, url, status, r.Code, r.Message)
	}
	if out != nil {
		if err := json.Unmarshal(r.Data, out); err != nil {
			t.Fatalf("%s %s: data %s: %v", method, url, r.Data, err)
		}
	}
}

// demoFail calls the API and requires the error status and code.
func demoFail(t testing.TB, method, url, token string, body any, wantStatus, wantCode int) demoResp {
	t.Helper()
	status, r := demoCall(t, method, url, token, body)
	if status != wantStatus || r.Code != wantCode {
		t.Fatalf("%s %s: got status %d code %d (%q), want status %d code %d", method, url, status, r.Code, r.Message, wantStatus, wantCode)
	}
	if r.Message == "" {
		t.Fatalf("%s %s: error %d without a message", method, url, r.Code)
	}
	return r
}

// demoLogs sends a test server's logs to a buffer that the test prints if
// it fails. For tests that leave demo streams open at shutdown: the server
// does not wait for those (see handleStream), so their last log lines can
// come after the test has ended, when the test's own output is closed.
func demoLogs(t testing.TB) testOption {
	t.Helper()
	var buf demoLogBuffer
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server logs:\n%s", buf.String())
		}
	})
	return withLogs(&buf)
}

type demoLogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *demoLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *demoLogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// demoLogin signs in as a demo user through the page's login.
func demoLogin(t testing.TB, base, user string) string {
	t.Helper()
	var out struct {
		UserID    string `json:"userID"`
		UserToken string `json:"userToken"`
	}
	demoOK(t, "POST", base+"/demo/login", "", map[string]string{"userID": user}, &out)
	if out.UserID != user || out.UserToken == "" {
		t.Fatalf("login as %s: got %+v", user, out)
	}
	return out.UserToken
}

func demoSend(t testing.TB, base, token, text string, receipt bool) demoMessage {
	t.Helper()
	var m demoMessage
	demoOK(t, "POST", base+"/demo/messages", token, map[string]any{"text": text, "needReadReceipt": receipt}, &m)
	return m
}

type demoList struct {
	GroupID     string        `json:"groupID"`
	MessageList []demoMessage `json:"messageList"`
}

func demoMessages(t testing.TB, base, token, query string) demoList {
	t.Helper()
	var l demoList
	demoOK(t, "GET", base+"/demo/messages"+query, token, nil, &l)
	return l
}

// demoCounts asks the API, as token's user, for the counts of m.
func demoCounts(t testing.TB, base, token string, m demoMessage) (read, unread, code int) {
	t.Helper()
	var out struct {
		MessageList []struct {
			ID              string `json:"ID"`
			ReadReceiptInfo struct {
				ReadCount   int `json:"readCount"`
				UnreadCount int `json:"unreadCount"`
			} `json:"readReceiptInfo"`
			Code int `json:"code"`
		} `json:"messageList"`
	}
	demoOK(t, "POST", base+"/v1/receipts/query", token, map[string]any{"messageList": []demoMessage{m}}, &out)
	if len(out.MessageList) != 1 || out.MessageList[0].ID != m.ID {
		t.Fatalf("query %s: got %+v", m.ID, out)
	}
	it := out.MessageList[0]
	return it.ReadReceiptInfo.ReadCount, it.ReadReceiptInfo.UnreadCount, it.Code
}

func TestDemoUsersAndGroup(t *testing.T) {
	base, s := startTestServer(t)
	var out struct {
		GroupID string   `json:"groupID"`
		Users   []string `json:"users"`
	}
	demoOK(t, "GET", base+"/demo/users", "", nil, &out)
	if out.GroupID != demoGroupID || !slices.Equal(out.Users, demoUsers) {
		t.Fatalf("GET /demo/users = %+v", out)
	}
	info, err := s.eng.GetGroup(context.Background(), demoGroupID)
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != readreceipt.GroupWork || info.Members != len(demoUsers) {
		t.Fatalf("demo group = %+v, want a Work group of %d", info, len(demoUsers))
	}
}

func TestDemoLogin(t *testing.T) {
	base, s := startTestServer(t)
	for _, u := range demoUsers {
		// The token is a user token of the API.
		tok := demoLogin(t, base, u)
		demoOK(t, "GET", base+"/demo/messages", tok, nil, nil)
	}
	for _, u := range []string{"mallory", "", "Alice", s.cfg.Admin} {
		r := demoFail(t, "POST", base+"/demo/login", "", map[string]string{"userID": u}, http.StatusForbidden, CodeDemoUser)
		if !strings.Contains(r.Message, "alice") {
			t.Errorf("login as %q: message %q does not name the demo users", u, r.Message)
		}
	}
	demoFail(t, "POST", base+"/demo/login", "", "alice", http.StatusBadRequest, readreceipt.CodeInvalidParameter)
	demoFail(t, "POST", base+"/demo/login", "", map[string]string{"userID": strings.Repeat("x", demoMaxBody)}, http.StatusRequestEntityTooLarge, readreceipt.CodeInvalidParameter)

	// The token lasts about a day.
	tok := demoLogin(t, base, "bob")
	payload, _, _ := strings.Cut(tok, ".")
	var tp tokenPayload
	if raw, err := base64.RawURLEncoding.DecodeString(payload); err != nil || json.Unmarshal(raw, &tp) != nil {
		t.Fatalf("token payload %q does not decode", payload)
	}
	if ttl := time.Until(time.Unix(tp.Exp, 0)); ttl < demoTokenTTL-time.Minute || ttl > demoTokenTTL+time.Minute {
		t.Fatalf("demo token valid for %v, want %v", ttl, demoTokenTTL)
	}
}

func TestDemoMessagesAuth(t *testing.T) {
	base, s := startTestServer(t)
	demoFail(t, "GET", base+"/demo/messages", "", nil, http.StatusUnauthorized, CodeTokenMissing)
	demoFail(t, "POST", base+"/demo/messages", "", map[string]any{"text": "hi"}, http.StatusUnauthorized, CodeTokenMissing)
	// A valid token of a user who is not in the demo group, and the
	// administrator's, are refused: the demo chat is the demo users'.
	for _, u := range []string{"mallory", s.cfg.Admin} {
		tok := s.mintToken(u, time.Hour)
		demoFail(t, "GET", base+"/demo/messages", tok, nil, http.StatusForbidden, CodeDemoUser)
		demoFail(t, "POST", base+"/demo/messages", tok, map[string]any{"text": "hi"}, http.StatusForbidden, CodeDemoUser)
	}
}

func TestDemoMessagesValidate(t *testing.T) {
	base, _ := startTestServer(t)
	alice := demoLogin(t, base, "alice")
	for name, body := range map[string]any{
		"empty":      map[string]any{"text": "", "needReadReceipt": true},
		"blank":      map[string]any{"text": " \n\t ", "needReadReceipt": true},
		"too long":   map[string]any{"text": strings.Repeat("é", demoMaxText+1), "needReadReceipt": true},
		"not object": []string{"hi"},
		"bad type":   map[string]any{"text": 7},
	} {
		t.Run(name, func(t *testing.T) {
			demoFail(t, "POST", base+"/demo/messages", alice, body, http.StatusBadRequest, readreceipt.CodeInvalidParameter)
		})
	}
	if l := demoMessages(t, base, alice, ""); len(l.MessageList) != 0 {
		t.Fatalf("refused messages were kept: %+v", l.MessageList)
	}
	// The longest text is taken, trimmed.
	m := demoSend(t, base, alice, "  "+strings.Repeat("é", demoMaxText)+"\n", false)
	if m.Text != strings.Repeat("é", demoMaxText) {
		t.Fatalf("text kept as %d characters", len([]rune(m.Text)))
	}
}

// A message sent through the page is tracked in the engine when it asks for
// a receipt, and the API's receipts, counts and member lists work on it.
func TestDemoMessagesTracked(t *testing.T) {
	base, s := startTestServer(t)
	alice := demoLogin(t, base, "alice")
	bob := demoLogin(t, base, "bob")
	carol := demoLogin(t, base, "carol")

	before := time.Now().Unix()
	m := demoSend(t, base, alice, "lunch at noon?", true)
	if m.ID == "" || m.ConversationType != "GROUP" || m.To != demoGroupID || m.From != "alice" ||
		m.Text != "lunch at noon?" || !m.NeedReadReceipt || m.Time < before || m.Time > time.Now().Unix() {
		t.Fatalf("sent message = %+v", m)
	}
	plain := demoSend(t, base, bob, "no receipt for this one", false)
	if plain.NeedReadReceipt || plain.ID == m.ID {
		t.Fatalf("second message = %+v", plain)
	}

	if read, unread, code := demoCounts(t, base, alice, m); read != 0 || unread != len(demoUsers)-1 || code != 0 {
		t.Fatalf("fresh message: read %d unread %d code %d", read, unread, code)
	}
	// The message that did not ask for a receipt is unknown to the engine.
	if _, _, code := demoCounts(t, base, bob, plain); code != readreceipt.CodeReceiptNotFound {
		t.Fatalf("message without receipt: code %d, want %d", code, readreceipt.CodeReceiptNotFound)
	}
	// Only the sender sees the counts; others get the answer for a message
	// that does not exist.
	if _, _, code := demoCounts(t, base, bob, m); code != readreceipt.CodeReceiptNotFound {
		t.Fatalf("bob asks for alice's counts: code %d, want %d", code, readreceipt.CodeReceiptNotFound)
	}

	for _, tok := range []string{bob, carol} {
		var out struct {
			MessageList []struct {
				ID       string `json:"ID"`
				Recorded bool   `json:"recorded"`
				Code     int    `json:"code"`
			} `json:"messageList"`
		}
		demoOK(t, "POST", base+"/v1/receipts", tok, map[string]any{"messageList": []demoMessage{m}}, &out)
		if len(out.MessageList) != 1 || !out.MessageList[0].Recorded || out.MessageList[0].Code != 0 {
			t.Fatalf("receipt: %+v", out)
		}
	}
	if read, unread, code := demoCounts(t, base, alice, m); read != 2 || unread != len(demoUsers)-3 || code != 0 {
		t.Fatalf("after two receipts: read %d unread %d code %d", read, unread, code)
	}
	var page struct {
		IsCompleted    bool     `json:"isCompleted"`
		ReadUserIDList []string `json:"readUserIDList"`
	}
	demoOK(t, "POST", base+"/v1/receipts/members", alice,
		map[string]any{"message": m, "filter": 0, "cursor": "", "count": 10}, &page)
	if !page.IsCompleted || !slices.Equal(page.ReadUserIDList, []string{"bob", "carol"}) {
		t.Fatalf("read members: %+v", page)
	}

	// The engine holds the message under the demo group with alice as
	// sender: alice cannot send herself a receipt.
	res, err := s.eng.SendMessageReadReceipt(context.Background(), "alice",
		[]readreceipt.MessageRef{{Conversation: readreceipt.Group(demoGroupID), ID: m.ID}})
	if err != nil || len(res) != 1 || res[0].Err == nil {
		t.Fatalf("alice's receipt of her own message: %+v, %v", res, err)
	}

	l := demoMessages(t, base, carol, "")
	if l.GroupID != demoGroupID || len(l.MessageList) != 2 || l.MessageList[0] != m || l.MessageList[1] != plain {
		t.Fatalf("GET /demo/messages = %+v", l)
	}
}

// GET /demo/messages?after=ID lists what follows ID.
func TestDemoMessagesAfter(t *testing.T) {
	base, _ := startTestServer(t)
	alice := demoLogin(t, base, "alice")
	bob := demoLogin(t, base, "bob")
	m1 := demoSend(t, base, alice, "one", true)
	m2 := demoSend(t, base, alice, "two", false)

	if l := demoMessages(t, base, bob, "?after="+m1.ID); len(l.MessageList) != 1 || l.MessageList[0] != m2 {
		t.Fatalf("after m1: %+v", l.MessageList)
	}
	if l := demoMessages(t, base, bob, "?after="+m2.ID); len(l.MessageList) != 0 {
		t.Fatalf("after the last: %+v", l.MessageList)
	}
	// An ID no longer kept (or never seen) lists everything kept.
	if l := demoMessages(t, base, bob, "?after=gone"); len(l.MessageList) != 2 {
		t.Fatalf("after an unknown ID: %+v", l.MessageList)
	}
}

// demoStream opens the demo stream as token's user.
func demoStream(t *testing.T, base, token, after string) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := "ws" + strings.TrimPrefix(base, "http") + "/demo/stream?token=" + url.QueryEscape(token) + "&after=" + url.QueryEscape(after)
	c, _, err := websocket.Dial(ctx, u, nil)
	if err != nil {
		t.Fatalf("dial the demo stream: %v", err)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

// readDemoStream reads one message of the demo stream.
func readDemoStream(t *testing.T, c *websocket.Conn) []demoMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read the demo stream: %v", err)
	}
	var m demoStreamMessage
	if typ != websocket.MessageText || json.Unmarshal(b, &m) != nil || m.Event != "DEMO_MESSAGES" {
		t.Fatalf("demo stream sent %s", b)
	}
	return m.Data
}

// The demo stream first sends what follows after, then each new message as
// it is sent.
func TestDemoStream(t *testing.T) {
	base, s := startTestServer(t, demoLogs(t))
	alice := demoLogin(t, base, "alice")
	bob := demoLogin(t, base, "bob")
	m1 := demoSend(t, base, alice, "one", true)
	m2 := demoSend(t, base, bob, "two", false)

	all := demoStream(t, base, bob, "")
	if got := readDemoStream(t, all); !slices.Equal(got, []demoMessage{m1, m2}) {
		t.Fatalf("stream from the start sent %+v", got)
	}
	tail := demoStream(t, base, alice, m1.ID)
	if got := readDemoStream(t, tail); !slices.Equal(got, []demoMessage{m2}) {
		t.Fatalf("stream after m1 sent %+v", got)
	}
	m3 := demoSend(t, base, alice, "three", true)
	for name, c := range map[string]*websocket.Conn{"bob": all, "alice": tail} {
		if got := readDemoStream(t, c); !slices.Equal(got, []demoMessage{m3}) {
			t.Fatalf("%s's stream sent %+v, want the new message", name, got)
		}
	}

	// Without a demo user's token there is no stream.
	for _, c := range []struct {
		token        string
		status, code int
	}{
		{"", http.StatusUnauthorized, CodeTokenMissing},
		{"garbage", http.StatusUnauthorized, CodeTokenMalformed},
		{s.mintToken("mallory", time.Hour), http.StatusForbidden, CodeDemoUser},
	} {
		demoFail(t, "GET", base+"/demo/stream?token="+url.QueryEscape(c.token), "", nil, c.status, c.code)
	}
}

// The chat survives a restart of the server on the same data directory,
// and so do the receipts of its messages.
func TestDemoMessagesPersist(t *testing.T) {
	dir := t.TempDir()
	onDir := withConfig(func(c *config) { c.DataDir = dir })
	var sent []demoMessage
	t.Run("first run", func(t *testing.T) {
		base, _ := startTestServer(t, onDir)
		alice := demoLogin(t, base, "alice")
		bob := demoLogin(t, base, "bob")
		sent = append(sent, demoSend(t, base, alice, "kept across restarts", true))
		sent = append(sent, demoSend(t, base, bob, "me too", false))
		demoOK(t, "POST", base+"/v1/receipts", bob, map[string]any{"messageList": sent[:1]}, nil)
	})
	if t.Failed() {
		return
	}
	t.Run("second run", func(t *testing.T) {
		base, s := startTestServer(t, onDir)
		alice := demoLogin(t, base, "alice")
		l := demoMessages(t, base, alice, "")
		if !slices.Equal(l.MessageList, sent) {
			t.Fatalf("after restart: %+v, want %+v", l.MessageList, sent)
		}
		if read, unread, code := demoCounts(t, base, alice, sent[0]); read != 1 || unread != len(demoUsers)-2 || code != 0 {
			t.Fatalf("counts after restart: read %d unread %d code %d", read, unread, code)
		}
		m := demoSend(t, base, alice, "and after", true)
		if l := demoMessages(t, base, alice, ""); len(l.MessageList) != 3 || l.MessageList[2] != m {
			t.Fatalf("after a new message: %+v", l.MessageList)
		}
		if info, err := s.eng.GetGroup(context.Background(), demoGroupID); err != nil || info.Members != len(demoUsers) {
			t.Fatalf("demo group after restart: %+v, %v", info, err)
		}
	})
}

// A demo group left by an earlier run, with members missing, gets them
// back; a group of a type without receipts stops the server with a clear
// error.
func TestEnsureDemoGroup(t *testing.T) {
	ctx := context.Background()
	eng, err := readreceipt.OpenDir(t.TempDir(), readreceipt.WithSyncWrites(false))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if err := eng.CreateGroup(ctx, demoGroupID, readreceipt.GroupWork, []string{"alice", "zoe"}); err != nil {
		t.Fatal(err)
	}
	if err := ensureDemoGroup(ctx, eng); err != nil {
		t.Fatal(err)
	}
	if info, _ := eng.GetGroup(ctx, demoGroupID); info.Members != len(demoUsers)+1 {
		t.Fatalf("members after ensureDemoGroup: %d, want %d", info.Members, len(demoUsers)+1)
	}
	if err := ensureDemoGroup(ctx, eng); err != nil {
		t.Fatalf("second call: %v", err)
	}

	if err := eng.DismissGroup(ctx, demoGroupID); err != nil {
		t.Fatal(err)
	}
	if err := eng.CreateGroup(ctx, demoGroupID, readreceipt.GroupAVChatRoom, nil); err != nil {
		t.Fatal(err)
	}
	err = ensureDemoGroup(ctx, eng)
	if err == nil || !strings.Contains(err.Error(), "-demo=false") {
		t.Fatalf("AVChatRoom demo group: err = %v, want advice to run with -demo=false", err)
	}
}

func TestDemoChatFile(t *testing.T) {
	logs := slog.New(slog.DiscardHandler)
	path := filepath.Join(t.TempDir(), demoMessagesFile)
	c, err := openDemoChat(path, logs)
	if err != nil {
		t.Fatal(err)
	}
	msg := func(i int) demoMessage {
		return demoMessage{ID: fmt.Sprintf("m%04d", i), ConversationType: "GROUP", To: demoGroupID, From: "alice", Text: fmt.Sprint(i), Time: int64(i)}
	}
	const n = 2*demoKeep + 7
	for i := range n {
		if err := c.append(msg(i)); err != nil {
			t.Fatal(err)
		}
		got, _ := c.since("")
		if want := min(i+1, demoKeep); len(got) != want || got[len(got)-1] != msg(i) {
			t.Fatalf("after %d messages: %d kept, last %+v", i+1, len(got), got[len(got)-1])
		}
	}
	// The file is compacted: it never holds more than twice what is kept.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if lines := bytes.Count(data, []byte("\n")); lines > 2*demoKeep {
		t.Fatalf("file has %d lines, want at most %d", lines, 2*demoKeep)
	}
	c2, err := openDemoChat(path, logs)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := c2.since("")
	want := make([]demoMessage, 0, demoKeep)
	for i := n - demoKeep; i < n; i++ {
		want = append(want, msg(i))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("reopened: %d messages from %v to %v", len(got), got[0].ID, got[len(got)-1].ID)
	}
}

// A line cut short by a crash is dropped, and the file is rewritten so that
// the next message does not land on the torn line.
func TestDemoChatTornFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), demoMessagesFile)
	good, _ := json.Marshal(demoMessage{ID: "m1", ConversationType: "GROUP", To: demoGroupID, From: "bob", Text: "hi", Time: 1})
	torn := []byte(`{"ID":"m2","conversationType":"GR`)
	if err := os.WriteFile(path, slices.Concat(good, []byte("\nnot json\n"), torn), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := openDemoChat(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := c.since(""); len(got) != 1 || got[0].ID != "m1" {
		t.Fatalf("loaded %+v, want m1 only", got)
	}
	if err := c.append(demoMessage{ID: "m3", ConversationType: "GROUP", To: demoGroupID, From: "carol", Text: "again", Time: 3}); err != nil {
		t.Fatal(err)
	}
	c2, err := openDemoChat(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := c2.since("")
	if len(got) != 2 || got[0].ID != "m1" || got[1].ID != "m3" {
		t.Fatalf("reloaded %+v, want m1 and m3", got)
	}
}

func TestDemoPageServed(t *testing.T) {
	base, _ := startTestServer(t)
	get := func(path string, header map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest("GET", base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res, b
	}
	for _, c := range []struct{ path, ctype, contains string }{
		{"/", "text/html; charset=utf-8", `<script src="/web/app.js" defer></script>`},
		{"/web/index.html", "text/html; charset=utf-8", `name="viewport"`},
		{"/web/app.js", "text/javascript; charset=utf-8", "/v1/receipts/members"},
		{"/web/app.css", "text/css; charset=utf-8", "@media"},
	} {
		res, body := get(c.path, nil)
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != c.ctype {
			t.Errorf("GET %s: %d %q, want 200 %q", c.path, res.StatusCode, res.Header.Get("Content-Type"), c.ctype)
			continue
		}
		if !bytes.Contains(body, []byte(c.contains)) {
			t.Errorf("GET %s: body lacks %q", c.path, c.contains)
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff header", c.path)
		}
		// Unchanged files are revalidated, not sent again.
		etag := res.Header.Get("ETag")
		if res, _ := get(c.path, map[string]string{"If-None-Match": etag}); etag == "" || res.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match %q: %d, want 304", c.path, etag, res.StatusCode)
		}
	}
	res, _ := get("/", nil)
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("page CSP = %q", csp)
	}
	// Every asset the page names is served.
	_, page := get("/", nil)
	for _, ref := range []string{"/web/app.js", "/web/app.css"} {
		if !bytes.Contains(page, []byte(`"`+ref+`"`)) {
			t.Errorf("page does not reference %s", ref)
		}
	}
	for _, p := range []string{"/web/missing.js", "/web/", "/web/web/app.js"} {
		res, body := get(p, nil)
		var r demoResp
		if res.StatusCode != http.StatusNotFound || json.Unmarshal(body, &r) != nil || r.Code == 0 {
			t.Errorf("GET %s: %d %s, want 404 with an error code", p, res.StatusCode, body)
		}
	}
	// The page is at / only; the files beside the binary's source are not
	// reachable.
	for _, p := range []string{"/index.html", "/demo.go", "/web/../demo.go"} {
		if res, _ := get(p, nil); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, res.StatusCode)
		}
	}
}

func TestDemoOff(t *testing.T) {
	base, s := startTestServer(t, withConfig(func(c *config) { c.Demo = false }))
	for _, c := range []struct{ method, path string }{
		{"GET", "/"}, {"GET", "/web/app.js"}, {"GET", "/demo/users"}, {"POST", "/demo/login"}, {"GET", "/demo/messages"},
	} {
		req, _ := http.NewRequest(c.method, base+c.path, strings.NewReader(`{"userID":"alice"}`))
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound && res.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("demo off: %s %s answers %d", c.method, c.path, res.StatusCode)
		}
	}
	if _, err := s.eng.GetGroup(context.Background(), demoGroupID); err == nil {
		t.Error("demo off: the demo group was created")
	}
}

// When the server shuts down, open demo streams are closed as going away,
// so that pages reconnect.
func TestDemoStreamShutdown(t *testing.T) {
	var c *websocket.Conn
	t.Run("serve", func(t *testing.T) {
		base, _ := startTestServer(t, demoLogs(t))
		tok := demoLogin(t, base, "carol")
		demoSend(t, base, tok, "hello", true)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		c, _, err = websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/demo/stream?token="+url.QueryEscape(tok), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := readDemoStream(t, c); len(got) != 1 {
			t.Fatalf("stream sent %+v", got)
		}
	})
	if c == nil {
		return
	}
	defer c.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := c.Read(ctx)
	if status := websocket.CloseStatus(err); status != websocket.StatusGoingAway {
		t.Fatalf("after shutdown the stream ended with %v (status %v), want StatusGoingAway", err, status)
	}
}
