package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"
)

// apiClient calls a test server over its real listener, as one user, and
// checks every exchange against openapi.yaml.
type apiClient struct {
	t     testing.TB
	base  string
	token string
	hc    *http.Client
	spec  *apiSpec
}

var testHTTPClient = &http.Client{
	Timeout:   30 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64},
}

func newClient(t testing.TB, base, token string) *apiClient {
	return &apiClient{t: t, base: base, token: token, hc: testHTTPClient, spec: loadSpec(t)}
}

// as returns a client of the same server with another token.
func (c *apiClient) as(token string) *apiClient {
	c2 := *c
	c2.token = token
	return &c2
}

// result is a decoded response.
type result struct {
	Status  int
	Code    int
	Message string
	Data    json.RawMessage
	Body    []byte
}

func (r result) String() string { return fmt.Sprintf("HTTP %d %s", r.Status, r.Body) }

// call sends body (encoded as JSON unless nil) and checks the request and
// the response against the spec.
func (c *apiClient) call(method, path string, body any) result {
	c.t.Helper()
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			c.t.Fatal(err)
		}
	}
	return c.exchange(method, path, b, true, nil)
}

// callRaw sends a raw body, invalid on purpose: only the response is
// checked against the spec.
func (c *apiClient) callRaw(method, path, body string) result {
	c.t.Helper()
	return c.exchange(method, path, []byte(body), false, nil)
}

func (c *apiClient) exchange(method, path string, body []byte, checkRequest bool, header http.Header) result {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	if c.spec == nil {
		// A path the spec does not describe.
	} else if err := c.spec.check(req, body, checkRequest, resp.StatusCode, resp.Header, rb); err != nil {
		c.t.Errorf("%s %s: exchange does not match openapi.yaml: %v\nrequest: %s\nresponse: HTTP %d %s", method, path, err, body, resp.StatusCode, rb)
	}
	res := result{Status: resp.StatusCode, Body: rb}
	var env struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(rb, &env); err != nil {
		c.t.Fatalf("%s %s: response is not JSON: %v: %s", method, path, err, rb)
	}
	res.Code, res.Message, res.Data = env.Code, env.Message, env.Data
	return res
}

// ok calls and requires success, decoding data into out (if not nil).
func (c *apiClient) ok(method, path string, body, out any) {
	c.t.Helper()
	res := c.call(method, path, body)
	if res.Status != http.StatusOK || res.Code != 0 {
		c.t.Fatalf("%s %s: want success, got %v", method, path, res)
	}
	if out != nil {
		if err := json.Unmarshal(res.Data, out); err != nil {
			c.t.Fatalf("%s %s: decode data: %v", method, path, err)
		}
	}
}

// fails calls and requires the HTTP status and code given. The request
// may be invalid on purpose, so only the response is checked against the
// spec.
func (c *apiClient) fails(method, path string, body any, status, code int) result {
	c.t.Helper()
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			c.t.Fatal(err)
		}
	}
	res := c.exchange(method, path, b, false, nil)
	if res.Status != status || res.Code != code {
		c.t.Fatalf("%s %s: want HTTP %d code %d, got %v", method, path, status, code, res)
	}
	if res.Message == "" {
		c.t.Errorf("%s %s: error without a message: %s", method, path, res.Body)
	}
	return res
}

// Helpers that build request bodies.

func gmsg(groupID, id, from string) map[string]any {
	return map[string]any{"ID": id, "conversationType": "GROUP", "to": groupID, "from": from}
}

func cmsg(from, to, id string) map[string]any {
	return map[string]any{"ID": id, "conversationType": "C2C", "to": to, "from": from}
}

func tracked(m map[string]any) map[string]any {
	out := map[string]any{"needReadReceipt": true}
	for k, v := range m {
		out[k] = v
	}
	return out
}

func list(msgs ...map[string]any) map[string]any {
	return map[string]any{"messageList": msgs}
}

type receiptResults struct {
	MessageList []struct {
		ID       string `json:"ID"`
		Recorded bool   `json:"recorded"`
		Code     int    `json:"code"`
		Message  string `json:"message"`
	} `json:"messageList"`
}

type receiptInfos struct {
	MessageList []struct {
		ID               string `json:"ID"`
		ConversationType string `json:"conversationType"`
		ReadReceiptInfo  struct {
			ReadCount   int  `json:"readCount"`
			UnreadCount int  `json:"unreadCount"`
			IsPeerRead  bool `json:"isPeerRead"`
			// Timestamp is nil when the answer has none.
			Timestamp *int64 `json:"timestamp"`
		} `json:"readReceiptInfo"`
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"messageList"`
}

type memberPage struct {
	MessageID        string    `json:"messageID"`
	IsCompleted      bool      `json:"isCompleted"`
	Cursor           string    `json:"cursor"`
	ReadUserIDList   *[]string `json:"readUserIDList"`
	UnreadUserIDList *[]string `json:"unreadUserIDList"`
}

type groupInfo struct {
	GroupID   string `json:"groupID"`
	Type      string `json:"type"`
	MemberNum int    `json:"memberNum"`
	Version   uint64 `json:"version"`
}

// fixture is a test server with clients for the administrator and a few
// users.
type fixture struct {
	base  string
	s     *server
	admin *apiClient
}

func newFixture(t testing.TB, opts ...testOption) *fixture {
	t.Helper()
	base, s := startTestServer(t, opts...)
	f := &fixture{base: base, s: s}
	f.admin = newClient(t, base, s.mintToken(s.cfg.Admin, time.Hour))
	return f
}

// user returns a client for userID.
func (f *fixture) user(userID string) *apiClient {
	return f.admin.as(f.s.mintToken(userID, time.Hour))
}
