package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestTokenSignVerify(t *testing.T) {
	secret := []byte(testSecret)
	now := time.Unix(1_800_000_000, 0)
	tok := signToken(secret, "alice", now.Add(time.Minute))
	user, err := verifyToken(secret, tok, now)
	if err != nil || user != "alice" {
		t.Fatalf("verify a fresh token: %q, %v", user, err)
	}
	// The expiry is exclusive: at exp the token is no longer valid.
	if _, err := verifyToken(secret, tok, now.Add(time.Minute)); codeOfErr(err) != CodeTokenExpired {
		t.Fatalf("token at its expiry: %v", err)
	}
	if _, err := verifyToken([]byte("another-secret-of-some-length"), tok, now); codeOfErr(err) != CodeTokenSignature {
		t.Fatalf("token checked with another secret: %v", err)
	}
	// The token is what the docs say: base64url JSON, a dot, the MAC.
	p, _, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		t.Fatal(err)
	}
	var payload map[string]any
	if err := json.Unmarshal(raw, &payload); err != nil || payload["u"] != "alice" || payload["exp"] != float64(now.Add(time.Minute).Unix()) {
		t.Fatalf("payload %s", raw)
	}
}

func codeOfErr(err error) int {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return -1
}

// forge returns a token with payload p signed with secret.
func forge(secret []byte, p string) string {
	return signTokenPayload(secret, base64.RawURLEncoding.EncodeToString([]byte(p)))
}

func TestAuthFailures(t *testing.T) {
	f := newFixture(t)
	f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g", "memberList": []string{"alice", "bob"}}, nil)
	f.admin.ok("POST", "/v1/messages", tracked(gmsg("g", "m1", "alice")), nil)
	secret := []byte(testSecret)
	good := f.s.mintToken("bob", time.Hour)
	p, sig, _ := strings.Cut(good, ".")
	alicePayload := base64.RawURLEncoding.EncodeToString([]byte(`{"u":"alice","exp":9999999999}`))
	cases := []struct {
		name   string
		header string
		code   int
	}{
		{"no header", "", CodeTokenMissing},
		{"empty bearer", "Bearer ", CodeTokenMissing},
		{"basic scheme", "Basic " + base64.StdEncoding.EncodeToString([]byte("bob:pw")), CodeTokenMalformed},
		{"no dot", "Bearer " + p + sig, CodeTokenMalformed},
		{"empty signature", "Bearer " + p + ".", CodeTokenMalformed},
		{"signature not base64", "Bearer " + p + ".!!!", CodeTokenMalformed},
		{"tampered signature", "Bearer " + p + "." + flip(sig), CodeTokenSignature},
		{"payload swapped", "Bearer " + alicePayload + "." + sig, CodeTokenSignature},
		{"other secret", "Bearer " + signToken([]byte("not-the-server-secret!"), "bob", time.Now().Add(time.Hour)), CodeTokenSignature},
		{"expired", "Bearer " + signToken(secret, "bob", time.Now().Add(-time.Second)), CodeTokenExpired},
		{"signed non-JSON", "Bearer " + forge(secret, "bob"), CodeTokenMalformed},
		{"signed empty user", "Bearer " + forge(secret, `{"u":"","exp":9999999999}`), CodeTokenMalformed},
		{"signed no expiry", "Bearer " + forge(secret, `{"u":"bob"}`), CodeTokenMalformed},
		{"signed long user", "Bearer " + forge(secret, `{"u":"`+strings.Repeat("b", 129)+`","exp":9999999999}`), CodeTokenMalformed},
		{"oversized", "Bearer " + strings.Repeat("a", 2000) + "." + sig, CodeTokenMalformed},
	}
	for _, c := range cases {
		h := http.Header{}
		if c.header != "" {
			h.Set("Authorization", c.header)
		}
		anon := f.admin.as("")
		res := anon.exchange("POST", "/v1/receipts", []byte(`{"messageList":[{"ID":"m1","conversationType":"GROUP","to":"g","from":"alice"}]}`), false, h)
		if res.Status != 401 || res.Code != c.code {
			t.Errorf("%s: want 401 code %d, got %v", c.name, c.code, res)
		}
	}
	// None of them recorded bob's receipt.
	var qi receiptInfos
	f.user("alice").ok("POST", "/v1/receipts/query", list(gmsg("g", "m1", "alice")), &qi)
	if qi.MessageList[0].ReadReceiptInfo.ReadCount != 0 {
		t.Fatal("a refused call recorded a receipt")
	}
	// A user token named like the administrator is the administrator: the
	// admin identity is a user ID, and only the secret's holder can sign it.
	adminByName := f.admin.as(signToken(secret, "administrator", time.Now().Add(time.Hour)))
	adminByName.ok("GET", "/v1/groups/g", nil, nil)

	// The event endpoint checks the token before upgrading.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	wsBase := "ws" + strings.TrimPrefix(f.base, "http")
	for _, u := range []string{"/v1/events", "/v1/events?token=", "/v1/events?token=" + p + "." + flip(sig)} {
		_, resp, err := websocket.Dial(ctx, wsBase+u, nil)
		if err == nil {
			t.Fatalf("%s: upgraded without a valid token", u)
		}
		if resp == nil || resp.StatusCode != 401 {
			t.Fatalf("%s: want 401, got %v (%v)", u, resp, err)
		}
	}
}

// flip changes the first character of a base64url string.
func flip(s string) string {
	if s[0] == 'A' {
		return "B" + s[1:]
	}
	return "A" + s[1:]
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestLogsNeverHoldTokens(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			var logs syncBuffer
			f := newFixture(t, withLogs(&logs), withConfig(func(c *config) { c.LogFormat = format }))
			f.admin.ok("POST", "/v1/groups", map[string]any{"groupID": "g", "memberList": []string{"alice", "bob"}}, nil)
			f.admin.ok("POST", "/v1/messages", tracked(gmsg("g", "m1", "alice")), nil)
			alice := f.s.mintToken("alice", time.Hour)
			bob := f.s.mintToken("bob", time.Hour)
			expired := signToken([]byte(testSecret), "carol", time.Now().Add(-time.Hour))
			forged := strings.Split(bob, ".")[0] + "." + flip(strings.Split(bob, ".")[1])
			f.admin.as(bob).ok("POST", "/v1/receipts", list(gmsg("g", "m1", "alice")), nil)
			f.admin.as(expired).fails("POST", "/v1/receipts", list(gmsg("g", "m1", "alice")), 401, CodeTokenExpired)
			f.admin.as(forged).fails("POST", "/v1/receipts", list(gmsg("g", "m1", "alice")), 401, CodeTokenSignature)

			// Tokens in the query string: on the event endpoint (accepted),
			// on an API endpoint, and on an unknown path.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			wsBase := "ws" + strings.TrimPrefix(f.base, "http")
			conn, _, err := websocket.Dial(ctx, wsBase+"/v1/events?token="+alice, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, _, _ = websocket.Dial(ctx, wsBase+"/v1/events?token="+forged, nil)
			for _, u := range []string{"/v1/groups/g?token=" + alice, "/v1/nope?token=" + bob, "/healthz?token=" + bob} {
				resp, err := testHTTPClient.Get(f.base + u)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
			}
			conn.Close(websocket.StatusNormalClosure, "")
			// The accepted connection's request line is written when its
			// handler ends, after the close.
			waitFor(t, func() bool {
				l := logs.String()
				return strings.Contains(l, "status=101") || strings.Contains(l, `"status":101`)
			})
			text := logs.String()
			if !strings.Contains(text, "/v1/receipts") || !strings.Contains(text, "/v1/events") || !strings.Contains(text, "/v1/nope") {
				t.Fatalf("the logs lack the requests; the test would prove nothing:\n%s", text)
			}
			for name, tok := range map[string]string{"alice": alice, "bob": bob, "expired": expired, "forged": forged} {
				p, sig, _ := strings.Cut(tok, ".")
				for _, part := range []string{tok, p, sig} {
					if strings.Contains(text, part) {
						t.Errorf("the logs hold (part of) %s's token %q:\n%s", name, part, text)
					}
				}
			}
			if strings.Contains(text, "token=") || strings.Contains(strings.ToLower(text), "bearer") {
				t.Errorf("the logs hold a query string or an Authorization header:\n%s", text)
			}
		})
	}
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestVerifiedTokensRechecked checks that a remembered token is still
// held to its expiry and to the lifetime bound.
func TestVerifiedTokensRechecked(t *testing.T) {
	sg := newSigner([]byte(testSecret))
	now := time.Unix(1_800_000_000, 0)
	tok := sg.sign("alice", now.Add(time.Hour))
	for range 2 { // the second check finds the remembered token
		if user, err := sg.verify(tok, now, 2*time.Hour); err != nil || user != "alice" {
			t.Fatalf("fresh token: %q %v", user, err)
		}
	}
	if _, err := sg.verify(tok, now.Add(time.Hour), 2*time.Hour); codeOfErr(err) != CodeTokenExpired {
		t.Fatalf("remembered token after its expiry: %v", err)
	}
	if _, err := sg.verify(tok, now, 30*time.Minute); codeOfErr(err) != CodeTokenMalformed {
		t.Fatalf("remembered token over a lower lifetime bound: %v", err)
	}
	// A spelling of its own is not found among the remembered.
	if _, err := sg.verify(tok+"A", now, 2*time.Hour); err == nil {
		t.Fatal("a longer token passed")
	}
}
