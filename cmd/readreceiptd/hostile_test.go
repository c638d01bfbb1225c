package main

// Hostile clients, over real sockets: slow and stalled requests, floods of
// connections, and every class of bad input the server must refuse with a
// JSON error rather than take loosely.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
)

// cutOffBound is how long a test waits for the server to cut a stalled
// client off, with the server's deadlines at one second: a liveness bound,
// generous for loaded machines, not a latency assertion.
const cutOffBound = 30 * time.Second

// rawDial opens a TCP connection to the test server at base.
func rawDial(t testing.TB, base string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readAnswer reads one HTTP response from c within bound, or fails.
func readAnswer(t testing.TB, c net.Conn, bound time.Duration) (*http.Response, []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(bound))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("answer's body: %v", err)
	}
	return resp, body
}

// waitClosed waits, within bound, until the server closes c, reading and
// dropping what it sends. It fails if c is still open at the bound.
func waitClosed(t testing.TB, c net.Conn, bound time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(bound))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %v", bound)
	}
}

// apiCode decodes the code of a JSON answer, failing if it is not JSON
// with a code.
func apiCode(t testing.TB, resp *http.Response, body []byte) int {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("HTTP %d answered as %q: %s", resp.StatusCode, ct, body)
	}
	var env struct {
		Code *int `json:"code"`
	}
	if err := json.Unmarshal(body, &env); err != nil || env.Code == nil {
		t.Fatalf("HTTP %d: not JSON with a code: %s", resp.StatusCode, body)
	}
	return *env.Code
}

func TestStalledBodyCutOff(t *testing.T) {
	base, s := startTestServer(t, withConfig(func(c *config) { c.ReadTimeout = time.Second }))
	tok := s.mintToken("alice", time.Hour)
	for _, auth := range []string{"Authorization: Bearer " + tok + "\r\n", ""} {
		c := rawDial(t, base)
		// Headers promise 200 bytes; 20 come, then nothing.
		fmt.Fprintf(c, "POST /v1/receipts HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"messageList\":[", auth)
		resp, body := readAnswer(t, c, cutOffBound)
		code := apiCode(t, resp, body)
		if auth != "" && (resp.StatusCode != http.StatusRequestTimeout || code != 10004) {
			t.Errorf("stalled body with a token: HTTP %d code %d, want 408 10004: %s", resp.StatusCode, code, body)
		}
		if auth == "" && (resp.StatusCode != http.StatusUnauthorized || code != CodeTokenMissing) {
			t.Errorf("stalled body without a token: HTTP %d code %d, want 401 70001: %s", resp.StatusCode, code, body)
		}
		// And the connection is closed, not kept for the rest of the body.
		waitClosed(t, c, cutOffBound)
	}
}

func TestStalledHeadersCutOff(t *testing.T) {
	base, _ := startTestServer(t, withConfig(func(c *config) { c.ReadHeaderTimeout = time.Second }))
	c := rawDial(t, base)
	io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	waitClosed(t, c, cutOffBound)
	// A connection that sends nothing at all is closed too.
	c = rawDial(t, base)
	waitClosed(t, c, cutOffBound)
}

func TestOversizedHeadersRefused(t *testing.T) {
	base, _ := startTestServer(t, withConfig(func(c *config) { c.MaxHeaderBytes = 4 << 10 }))
	c := rawDial(t, base)
	go fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("b", 64<<10))
	resp, _ := readAnswer(t, c, cutOffBound)
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("64 KiB of headers over a 4 KiB limit: HTTP %d", resp.StatusCode)
	}
}

// TestSlowClientsDoNotStopHealth holds thousands of stalled requests open,
// under the default connection cap, and checks that /healthz and API
// calls are answered meanwhile.
func TestSlowClientsDoNotStopHealth(t *testing.T) {
	const slow = 2000
	// This process holds both ends of every connection.
	if lim := fdLimit(); lim < 2*slow+1024 {
		t.Skipf("the open-file limit is %d; %d slow clients need %d", lim, slow, 2*slow+1024)
	}
	if d := defaultConfig().MaxConns; d < slow+50 {
		t.Fatalf("the default -max-conns is %d, under %d with an open-file limit of %d", d, slow+50, fdLimit())
	}
	f := newFixture(t, withConfig(func(c *config) { c.ReadTimeout = time.Minute }))
	tok := f.s.mintToken("alice", time.Hour)
	conns := make([]net.Conn, slow)
	for i := range conns {
		conns[i] = rawDial(t, f.base)
		fmt.Fprintf(conns[i], "POST /v1/receipts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{", tok)
	}
	// Every one of them holds a connection of the server.
	waitFor(t, func() bool { return len(f.s.listener.slots) >= slow })
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range 20 {
		resp, err := hc.Get(f.base + "/healthz")
		if err != nil {
			t.Fatalf("healthz %d with %d stalled clients: %v", i, slow, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("healthz %d with %d stalled clients: HTTP %d", i, slow, resp.StatusCode)
		}
	}
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g", "memberList": []string{"alice", "bob"}}, nil)
}

func TestDefaultMaxConns(t *testing.T) {
	for limit, want := range map[uint64]int{0: 1024, 100: 64, 1024: 768, 20000: 10000, 1 << 20: 10000} {
		if got := defaultMaxConns(limit); got != want {
			t.Errorf("defaultMaxConns(%d) = %d, want %d", limit, got, want)
		}
	}
}

func TestConnectionCap(t *testing.T) {
	const limit = 8
	base, s := startTestServer(t, withConfig(func(c *config) {
		c.MaxConns = limit
		c.ReadHeaderTimeout = time.Minute
		c.IdleTimeout = time.Minute
	}))
	held := make([]net.Conn, limit)
	for i := range held {
		held[i] = rawDial(t, base)
	}
	// The slots are taken as the server accepts; wait until it has.
	waitFor(t, func() bool {
		nl := s.listener
		return nl != nil && len(nl.slots) == limit
	})
	// Over the cap: answered 503 with a code and closed at once.
	c := rawDial(t, base)
	resp, body := readAnswer(t, c, cutOffBound)
	if code := apiCode(t, resp, body); resp.StatusCode != http.StatusServiceUnavailable || code != CodeTooManyConnections {
		t.Fatalf("connection over the cap: HTTP %d code %d, want 503 %d", resp.StatusCode, code, CodeTooManyConnections)
	}
	waitClosed(t, c, cutOffBound)
	if got := value(s.metrics.refused); got < 1 {
		t.Fatalf("connections_refused_total %v after a refusal", got)
	}
	// A slot given back is usable again.
	held[0].Close()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	waitFor(t, func() bool {
		resp, err := hc.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// wsHandshake sends a WebSocket handshake to path with extra headers
// (a header set to "" is removed) and returns the answer, which must be
// JSON with a code unless it is 101.
func wsHandshake(t testing.TB, base, path string, header map[string]string) (int, int, http.Header) {
	t.Helper()
	key := make([]byte, 16)
	rand.Read(key)
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", base64.StdEncoding.EncodeToString(key))
	for k, v := range header {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp.StatusCode, 0, resp.Header
	}
	body, _ := io.ReadAll(resp.Body)
	if sp := loadSpec(t); strings.HasPrefix(path, "/v1/") {
		if err := sp.check(req, nil, false, resp.StatusCode, resp.Header, body); err != nil {
			t.Errorf("%s: answer does not match openapi.yaml: %v\nHTTP %d %s", path, err, resp.StatusCode, body)
		}
	}
	return resp.StatusCode, apiCode(t, resp, body), resp.Header
}

func TestEventHandshakeRefusalsAreJSON(t *testing.T) {
	base, s := startTestServer(t)
	auth := "Bearer " + s.mintToken("alice", time.Hour)
	host := strings.TrimPrefix(base, "http://")
	for _, c := range []struct {
		name         string
		header       map[string]string
		status, code int
	}{
		{"plain GET", map[string]string{"Authorization": auth, "Connection": "", "Upgrade": ""}, 426, 10004},
		{"no Upgrade", map[string]string{"Authorization": auth, "Upgrade": ""}, 426, 10004},
		{"version 8", map[string]string{"Authorization": auth, "Sec-WebSocket-Version": "8"}, 426, 10004},
		{"no key", map[string]string{"Authorization": auth, "Sec-WebSocket-Key": ""}, 400, 10004},
		{"short key", map[string]string{"Authorization": auth, "Sec-WebSocket-Key": "c2hvcnQ="}, 400, 10004},
		{"other origin", map[string]string{"Authorization": auth, "Origin": "http://evil.example"}, 403, CodeOriginRefused},
		{"no token", map[string]string{}, 401, CodeTokenMissing},
		{"same origin", map[string]string{"Authorization": auth, "Origin": "http://" + host}, 101, 0},
	} {
		status, code, h := wsHandshake(t, base, "/v1/events", c.header)
		if status != c.status || code != c.code {
			t.Errorf("%s: HTTP %d code %d, want %d %d", c.name, status, code, c.status, c.code)
		}
		if status == 426 && !strings.EqualFold(h.Get("Upgrade"), "websocket") {
			t.Errorf("%s: 426 without Upgrade: websocket", c.name)
		}
	}
	// The demo stream refuses the same way.
	demoAuth := "Bearer " + s.mintToken("bob", time.Hour)
	if status, code, _ := wsHandshake(t, base, "/demo/stream", map[string]string{"Authorization": demoAuth, "Upgrade": ""}); status != 426 || code != 10004 {
		t.Errorf("demo stream without Upgrade: HTTP %d code %d", status, code)
	}
}

func TestEventConnsPerUserCap(t *testing.T) {
	base, s := startTestServer(t, withConfig(func(c *config) { c.MaxEventConnsPerUser = 2 }))
	alice := s.mintToken("alice", time.Hour)
	first := dialEvents(t, base, alice, true, nil)
	dialEvents(t, base, alice, false, nil)
	waitConns(t, s, "alice", 2)
	status, code, _ := wsHandshake(t, base, "/v1/events", map[string]string{"Authorization": "Bearer " + alice})
	if status != http.StatusTooManyRequests || code != CodeTooManyEventConns {
		t.Fatalf("third connection of alice: HTTP %d code %d, want 429 %d", status, code, CodeTooManyEventConns)
	}
	// The cap is per user.
	dialEvents(t, base, s.mintToken("bob", time.Hour), true, nil)
	// A closed connection frees its place.
	first.Close(1000, "")
	waitConns(t, s, "alice", 1)
	dialEvents(t, base, alice, true, nil)
}

// errorSchema returns the spec's Error schema, for answers to requests no
// operation describes (405 on any path).
func errorSchema(t testing.TB) *openapi3.Schema {
	return loadSpec(t).doc.Components.Schemas["Error"].Value
}

func TestWrongMethodAndUnknownPath(t *testing.T) {
	for _, demo := range []bool{true, false} {
		t.Run(fmt.Sprintf("demo=%v", demo), func(t *testing.T) {
			base, _ := startTestServer(t, withConfig(func(c *config) { c.Demo = demo }))
			cases := []struct {
				method, path string
				status       int
				allow        string
			}{
				{"GET", "/v1/receipts", 405, "POST"},
				{"PUT", "/v1/groups/g1", 405, "GET, HEAD, DELETE"},
				{"GET", "/v1/groups/g1/members", 405, "POST"},
				{"POST", "/healthz", 405, "GET, HEAD"},
				{"DELETE", "/metrics", 405, "GET, HEAD"},
				{"POST", "/v1/events", 405, "GET, HEAD"},
				{"GET", "/v1/nope", 404, ""},
				{"GET", "/nope", 404, ""},
			}
			if demo {
				cases = append(cases, struct {
					method, path string
					status       int
					allow        string
				}{"POST", "/", 405, "GET, HEAD"}, struct {
					method, path string
					status       int
					allow        string
				}{"GET", "/demo/login", 405, "POST"})
			} else {
				cases = append(cases, struct {
					method, path string
					status       int
					allow        string
				}{"GET", "/", 404, ""})
			}
			for _, c := range cases {
				req, _ := http.NewRequest(c.method, base+c.path, nil)
				resp, err := testHTTPClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				code := apiCode(t, resp, body)
				if resp.StatusCode != c.status || code != 10004 || resp.Header.Get("Allow") != c.allow {
					t.Errorf("%s %s: HTTP %d code %d Allow %q, want %d 10004 Allow %q: %s",
						c.method, c.path, resp.StatusCode, code, resp.Header.Get("Allow"), c.status, c.allow, body)
				}
				var v any
				json.Unmarshal(body, &v)
				if err := errorSchema(t).VisitJSON(v); err != nil {
					t.Errorf("%s %s: body is not the spec's Error: %v", c.method, c.path, err)
				}
				if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
					t.Errorf("%s %s: no X-Content-Type-Options: nosniff", c.method, c.path)
				}
			}
		})
	}
}

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		path, token string
		status      int
		challenge   string
	}{
		{"/healthz", "", 200, ""},
		{"/metrics", "", 200, ""},
		{"/openapi.yaml", "", 200, ""},
		{"/", "", 200, ""},
		{"/v1/groups/g", "", 401, `Bearer realm="readreceiptd"`},
		{"/v1/groups/g", "x.y", 401, `Bearer realm="readreceiptd", error="invalid_token"`},
		{"/v1/groups/g", f.s.mintToken("alice", time.Hour), 403, ""},
	} {
		req, _ := http.NewRequest("GET", f.base+c.path, nil)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := testHTTPClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Errorf("%s: HTTP %d, want %d", c.path, resp.StatusCode, c.status)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("%s: security headers missing: %v", c.path, resp.Header)
		}
		if got := resp.Header.Get("WWW-Authenticate"); got != c.challenge {
			t.Errorf("%s: WWW-Authenticate %q, want %q", c.path, got, c.challenge)
		}
	}
}

// TestInvalidUTF8Refused sends strings that encoding/json would rewrite to
// U+FFFD. Before, "m\xff" and "m\xfe" named the same message; now each is
// refused, and so is every lone surrogate escape.
func TestInvalidUTF8Refused(t *testing.T) {
	f := newFixture(t)
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g", "memberList": []string{"alice", "bob"}}, nil)
	f.admin.ok("POST", "/v1/messages", tracked(gmsg("g", "m\uFFFD", "alice")), nil)
	bob := f.user("bob")
	for _, body := range []string{
		`{"messageList":[{"ID":"m` + "\xff" + `","conversationType":"GROUP","to":"g","from":"alice"}]}`,
		`{"messageList":[{"ID":"m` + "\xed\xa0\x80" + `","conversationType":"GROUP","to":"g","from":"alice"}]}`,
		`{"messageList":[{"ID":"m\ud800","conversationType":"GROUP","to":"g","from":"alice"}]}`,
		`{"messageList":[{"ID":"m\udc00","conversationType":"GROUP","to":"g","from":"alice"}]}`,
		`{"messageList":[{"ID":"m\ud800\u0041","conversationType":"GROUP","to":"g","from":"alice"}]}`,
		`{"messageList":[{"ID":"m","conversationType":"GROUP","to":"g` + "\xc3" + `","from":"alice"}]}`,
		`{"messageList":[{"ID":"m","conversationType":"GROUP","to":"g","from":"alice","payload":{"text":"` + "\xff" + `"}}]}`,
	} {
		res := bob.callRaw("POST", "/v1/receipts", body)
		if res.Status != 400 || res.Code != 10004 {
			t.Errorf("receipt with %q: want HTTP 400 code 10004, got %v", body, res)
		}
	}
	// Nothing was recorded for the message the rewriting would have hit.
	var qi receiptInfos
	f.user("alice").ok("POST", "/v1/receipts/query", list(gmsg("g", "m\uFFFD", "alice")), &qi)
	if qi.MessageList[0].ReadReceiptInfo.ReadCount != 0 {
		t.Fatalf("a refused receipt was recorded: %+v", qi)
	}
	for _, c := range []struct{ path, body string }{
		{"/v1/groups", `{"groupID":"g` + "\xff" + `"}`},
		{"/v1/groups", `{"groupID":"h","memberList":["a\udfff"]}`},
		{"/v1/groups/g/members", `{"memberList":["` + "\x80" + `"]}`},
		{"/v1/messages", `{"ID":"` + "\xfe" + `","conversationType":"GROUP","to":"g","from":"alice","needReadReceipt":true}`},
	} {
		if res := f.admin.callRaw("POST", c.path, c.body); res.Status != 400 || res.Code != 10004 {
			t.Errorf("%s %q: want HTTP 400 code 10004, got %v", c.path, c.body, res)
		}
	}
	if status, r := demoCall(t, "POST", f.base+"/demo/login", "", json.RawMessage(`{"userID":"bob\ud800"}`)); status != 400 || r.Code != 10004 {
		t.Errorf("demo login with a lone surrogate: HTTP %d code %d", status, r.Code)
	}
	// A surrogate pair is a real character and is taken exactly.
	var g groupInfo
	f.admin.ok("POST", "/v1/groups", json.RawMessage(`{"groupID":"smile\ud83d\ude00"}`), &g)
	if g.GroupID != "smile😀" {
		t.Fatalf("group from a surrogate pair: %q", g.GroupID)
	}
	// Escaped backslashes are not escapes.
	f.admin.ok("POST", "/v1/groups", json.RawMessage(`{"groupID":"back\\ud800"}`), &g)
	if g.GroupID != `back\ud800` {
		t.Fatalf("group with an escaped backslash: %q", g.GroupID)
	}
}

func TestExactJSONText(t *testing.T) {
	for in, want := range map[string]bool{
		`{}`:                  true,
		`"é"`:                 true,
		`"\u00e9"`:            true,
		`"\ud83d\ude00"`:      true,
		`"\\ud800"`:           true,
		`"\\\ud800"`:          false,
		`"\ud800"`:            false,
		`"\udc00"`:            false,
		`"\ud800\ud800"`:      false,
		`"\ud800x"`:           false,
		`"\ud800\u00"`:        false,
		"\"\xff\"":            false,
		"\"\xed\xa0\x80\"":    false,
		`"\u12`:               true, // malformed: the decoder refuses it
		`"a\"b\\"`:            true,
		`["\uD83D\uDE00", 1]`: true,
	} {
		if got := exactJSONText([]byte(in)); got != want {
			t.Errorf("exactJSONText(%s) = %v, want %v", in, got, want)
		}
	}
}

func TestContentTypeRequired(t *testing.T) {
	f := newFixture(t)
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g", "memberList": []string{"alice", "bob"}}, nil)
	body := []byte(`{"groupID":"h"}`)
	for ct, want := range map[string]int{
		"":                                  415,
		"text/plain":                        415,
		"application/x-www-form-urlencoded": 415,
		"application/json; charset=latin1":  415,
		"application/jsonx":                 415,
		"application/json; charset=UTF-8":   200,
	} {
		h := http.Header{"Content-Type": {ct}}
		if ct == "" {
			h = http.Header{"Content-Type": nil}
		}
		res := f.admin.exchange("POST", "/v1/groups", body, false, h)
		if res.Status != want || (want == 415 && res.Code != 10004) {
			t.Errorf("Content-Type %q: got %v, want HTTP %d", ct, res, want)
		}
		if res.Status == 200 {
			f.admin.ok("DELETE", "/v1/groups/h", nil, nil)
		}
	}
	if status, r := demoCallType(t, f.base+"/demo/login", "text/plain", `{"userID":"bob"}`); status != 415 || r.Code != 10004 {
		t.Errorf("demo login as text/plain: HTTP %d code %d", status, r.Code)
	}
}

// demoCallType posts body with Content-Type ct.
func demoCallType(t testing.TB, url, ct, body string) (int, demoResp) {
	t.Helper()
	resp, err := http.Post(url, ct, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r demoResp
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	return resp.StatusCode, r
}

// TestTokenSpellings checks that one signature is valid in one spelling
// only: the spellings a lenient base64 decoder maps to the same bytes are
// refused.
func TestTokenSpellings(t *testing.T) {
	f := newFixture(t)
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g", "memberList": []string{"alice", "bob"}}, nil)
	good := f.s.mintToken("bob", time.Hour)
	p, sig, _ := strings.Cut(good, ".")
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, sig[len(sig)-1])
	var variants []string
	// The last character carries 4 bits of the MAC and 2 unused bits.
	for i := range 4 {
		if alt := last&^3 | i; alt != last {
			variants = append(variants, p+"."+sig[:len(sig)-1]+alphabet[alt:alt+1])
		}
	}
	variants = append(variants, good+"=", p+"."+strings.ReplaceAll(strings.ReplaceAll(sig, "-", "+"), "_", "/"))
	padded := base64.URLEncoding.EncodeToString(mustDecode(t, p))
	if padded != p {
		variants = append(variants, padded+"."+sig)
	}
	body := list(gmsg("g", "nothing", "alice"))
	tried := 0
	f.admin.as(good).call("POST", "/v1/receipts", body) // the real spelling is accepted
	for _, v := range variants {
		if v == good {
			continue // a signature without - or _ reads the same in both alphabets
		}
		// Lenient decoding agrees these are the same signature.
		if _, s2, _ := strings.Cut(v, "."); len(s2) == len(sig) && s2 != sig {
			a, _ := base64.RawURLEncoding.DecodeString(sig)
			b, _ := base64.RawURLEncoding.DecodeString(s2)
			if string(a) != string(b) {
				continue
			}
		}
		tried++
		res := f.admin.as(v).exchange("POST", "/v1/receipts", []byte(mustJSON(t, body)), false, nil)
		if res.Status != 401 {
			t.Errorf("token spelled %q: got %v, want 401", v, res)
		}
	}
	if tried < 4 {
		t.Fatalf("only %d spellings tried; the test would prove little", tried)
	}
	// A line break in a query-string token (browsers may send one) is
	// refused too.
	if status, code, _ := wsHandshake(t, f.base, "/v1/events?token="+p+"."+sig[:20]+"%0A"+sig[20:], nil); status != 401 || code != CodeTokenMalformed {
		t.Errorf("token with a line break: HTTP %d code %d", status, code)
	}
}

func mustDecode(t testing.TB, s string) []byte {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTokenLifetimeBounded(t *testing.T) {
	f := newFixture(t, withConfig(func(c *config) { c.MaxTokenTTL = 2 * time.Hour }))
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g"}, nil)
	long := f.admin.as(f.s.mintToken(f.s.cfg.Admin, 3*time.Hour))
	long.fails("GET", "/v1/groups/g", nil, 401, CodeTokenMalformed)
	f.admin.as(f.s.mintToken(f.s.cfg.Admin, 2*time.Hour)).ok("GET", "/v1/groups/g", nil, nil)

	env := runEnv{stdout: io.Discard, stderr: io.Discard, getenv: func(k string) string {
		switch k {
		case "READRECEIPTD_SECRET":
			return testSecret
		case "READRECEIPTD_MAX_TOKEN_TTL":
			return "2h"
		}
		return ""
	}}
	if err := runWith(context.Background(), []string{"token", "-user", "alice", "-ttl", "3h"}, env); err == nil {
		t.Error("the token subcommand minted a token over -max-token-ttl")
	}
	if err := runWith(context.Background(), []string{"token", "-user", "alice", "-ttl", "2h"}, env); err != nil {
		t.Errorf("the token subcommand at -max-token-ttl: %v", err)
	}
}

func TestQueryTokenOnlyOnWebSockets(t *testing.T) {
	f := newFixture(t)
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g", "memberList": []string{"alice", "bob"}}, nil)
	admin := f.s.mintToken(f.s.cfg.Admin, time.Hour)
	bob := f.s.mintToken("bob", time.Hour)
	anon := f.admin.as("")
	anon.fails("GET", "/v1/groups/g?token="+admin, nil, 401, CodeTokenMalformed)
	anon.fails("POST", "/v1/receipts?token="+bob, list(gmsg("g", "m1", "alice")), 401, CodeTokenMalformed)
	if status, r := demoCall(t, "GET", f.base+"/demo/messages?token="+bob, "", nil); status != 401 || r.Code != CodeTokenMalformed {
		t.Errorf("demo messages with a query token: HTTP %d code %d", status, r.Code)
	}
	// The WebSocket handshakes take it.
	dialEvents(t, f.base, bob, false, nil)
	demoStream(t, f.base, bob, "")
}

// TestForeignMessagesLookMissing checks that a user learns no more about
// a message that is not theirs than about one that does not exist.
func TestForeignMessagesLookMissing(t *testing.T) {
	f := newFixture(t)
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g", "memberList": []string{"alice", "bob"}}, nil)
	f.admin.ok("POST", "/v1/messages", tracked(gmsg("g", "real", "alice")), nil)
	f.admin.ok("POST", "/v1/messages", tracked(cmsg("alice", "bob", "c-real")), nil)
	carol := f.user("carol") // in neither conversation
	bob := f.user("bob")     // a recipient, not the sender
	// same compares two answers, the message IDs they echo aside.
	same := func(what string, a, b result, idA, idB any) {
		t.Helper()
		echoA := strings.ReplaceAll(string(a.Body), fmt.Sprintf("%q", idA), `"<id>"`)
		echoB := strings.ReplaceAll(string(b.Body), fmt.Sprintf("%q", idB), `"<id>"`)
		if a.Status != b.Status || echoA != echoB {
			t.Errorf("%s: a foreign message answers %v, a missing one %v", what, a, b)
		}
	}
	for _, c := range []struct {
		who  *apiClient
		name string
		real map[string]any
		none map[string]any
	}{
		{carol, "carol, group", gmsg("g", "real", "alice"), gmsg("g", "none", "alice")},
		{carol, "carol, unknown group", gmsg("g", "real", "alice"), gmsg("nogroup", "real", "alice")},
		{carol, "carol, C2C", cmsg("alice", "bob", "c-real"), cmsg("alice", "bob", "c-none")},
		{bob, "bob, group", gmsg("g", "real", "alice"), gmsg("g", "none", "alice")},
	} {
		for _, path := range []string{"/v1/receipts/query", "/v1/receipts"} {
			if path == "/v1/receipts" && c.who == bob {
				continue // bob may send receipts for alice's message
			}
			same(c.name+" "+path, c.who.call("POST", path, list(c.real)), c.who.call("POST", path, list(c.none)), c.real["ID"], c.none["ID"])
		}
		if c.real["conversationType"] == "GROUP" {
			page := func(m map[string]any) result {
				return c.who.exchange("POST", "/v1/receipts/members", []byte(mustJSON(t, map[string]any{"message": m, "filter": 0, "count": 5})), true, nil)
			}
			same(c.name+" members", page(c.real), page(c.none), c.real["ID"], c.none["ID"])
		}
	}
	// The administrator keeps the precise answers.
	var rr receiptResults
	f.admin.ok("POST", "/v1/receipts", list(gmsg("g", "real", "alice")), &rr)
	if rr.MessageList[0].Code != 91006 {
		t.Errorf("administrator's receipt as a non-recipient: %+v", rr)
	}
}

func TestDemoSafety(t *testing.T) {
	run := func(cfgf func(*config)) error {
		dir := t.TempDir()
		env := runEnv{stdout: io.Discard, stderr: io.Discard, getenv: func(string) string { return "" },
			configure: func(c *config) {
				c.DataDir = dir
				c.Secret = testSecret
				c.Addr = "127.0.0.1:0"
				cfgf(c)
			}}
		ctx, cancel := context.WithCancel(context.Background())
		env.ready = func(string, *server) { cancel() }
		return runWith(ctx, nil, env)
	}
	if err := run(func(c *config) { c.Admin = "alice" }); err == nil || !strings.Contains(err.Error(), "demo user") {
		t.Errorf("-admin alice with demo mode: %v", err)
	}
	if err := run(func(c *config) { c.Admin = "alice"; c.Demo = false }); err != nil {
		t.Errorf("-admin alice without demo mode: %v", err)
	}
	if err := run(func(c *config) { c.Addr = "0.0.0.0:0" }); err == nil || !strings.Contains(err.Error(), "-demo-public") {
		t.Errorf("demo mode on every interface: %v", err)
	}
	if err := run(func(c *config) { c.Addr = ":0"; c.DemoPublic = true }); err != nil {
		t.Errorf("demo mode on every interface with -demo-public: %v", err)
	}
	if err := run(func(c *config) { c.Addr = "0.0.0.0:0"; c.Demo = false }); err != nil {
		t.Errorf("no demo on every interface: %v", err)
	}
	for addr, want := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:80": true, "localhost:1": true, "127.9.9.9:1": true,
		":8080": false, "0.0.0.0:1": false, "[::]:1": false, "10.0.0.1:1": false, "example.com:1": false, "nonsense": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v", addr, got)
		}
	}
}

// TestEventSocketsOutliveRequestDeadlines checks that the read and write
// deadlines, which bound requests, do not end an event WebSocket: one
// opened under one-second deadlines still gets events after they passed.
func TestEventSocketsOutliveRequestDeadlines(t *testing.T) {
	f := newFixture(t, withConfig(func(c *config) { c.ReadTimeout = time.Second; c.WriteTimeout = time.Second }))
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g", "memberList": []string{"alice", "bob"}}, nil)
	f.admin.ok("POST", "/v1/messages", tracked(gmsg("g", "m1", "alice")), nil)
	conn := dialEvents(t, f.base, f.s.mintToken("alice", time.Hour), true, nil)
	waitConns(t, f.s, "alice", 1)
	time.Sleep(2500 * time.Millisecond) // past both deadlines
	f.user("bob").ok("POST", "/v1/receipts", list(gmsg("g", "m1", "alice")), nil)
	wantEvent(t, conn, eventJSON{GroupID: "g", UserID: "bob", MessageID: "m1", ReadCount: 1, UnreadCount: 0, DeliveredCount: 1, UndeliveredCount: 0})
}
