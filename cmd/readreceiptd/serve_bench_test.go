package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// discardWriter is a ResponseWriter that keeps the status and drops the
// body, so that a benchmark counts the server's allocations only: no
// client, no connection, no response recorder.
type discardWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(s int)   { w.status = s }
func (w *discardWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	w.n += len(b)
	return len(b), nil
}

// reusableRequest is one request sent again and again with the same body.
type reusableRequest struct {
	r    *http.Request
	body *bytes.Reader
	raw  []byte
}

func newReusableRequest(tb testing.TB, path, token string, body []byte) *reusableRequest {
	rr := &reusableRequest{raw: body, body: bytes.NewReader(body)}
	r, err := http.NewRequest("POST", "http://127.0.0.1"+path, rr.body)
	if err != nil {
		tb.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer "+token)
	r.Header.Set("Content-Type", "application/json")
	r.RemoteAddr = "127.0.0.1:1"
	rr.r = r
	return rr
}

func (rr *reusableRequest) serve(tb testing.TB, s *server, w *discardWriter, body []byte) {
	if body == nil {
		body = rr.raw
	}
	rr.body.Reset(body)
	rr.r.Body = io.NopCloser(rr.body)
	rr.r.ContentLength = int64(len(body))
	clear(w.h)
	w.status, w.n = 0, 0
	s.ServeHTTP(w, rr.r)
	if w.status != 200 {
		tb.Fatalf("HTTP %d", w.status)
	}
}

// BenchmarkServerSide measures what the server itself spends on one API
// call, handed to its handler in process: receipt calls of loadBatch
// messages (synced writes, each recording new receipts), counts of
// loadBatch messages and a member page of 50. B/op and allocs/op are the
// server's (engine included), without any client's.
func BenchmarkServerSide(b *testing.B) {
	le := newLoadEnv(b, true, withLogs(io.Discard)) // the log's sink is not the server's cost
	s := le.f.s
	w := &discardWriter{h: http.Header{}}
	b.Run("op=receipts", func(b *testing.B) {
		reqs := make([]*reusableRequest, loadMembers)
		for i := 1; i < loadMembers; i++ {
			reqs[i] = newReusableRequest(b, "/v1/receipts", le.tokens[i], nil)
		}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			n := int(le.next.Add(1) - 1)
			batch := n % len(le.bodies)
			reader := 1 + (n/len(le.bodies))%(loadMembers-1)
			reqs[reader].serve(b, s, w, le.bodies[batch])
		}
	})
	b.Run("op=counts", func(b *testing.B) {
		rr := newReusableRequest(b, "/v1/receipts/query", le.tokens[0], le.bodies[0])
		b.ReportAllocs()
		for b.Loop() {
			rr.serve(b, s, w, nil)
		}
	})
	b.Run("op=members", func(b *testing.B) {
		body, _ := json.Marshal(map[string]any{"message": gmsg("load", "m000", "sender"), "filter": 1, "count": 50})
		rr := newReusableRequest(b, "/v1/receipts/members", le.tokens[0], body)
		b.ReportAllocs()
		for b.Loop() {
			rr.serve(b, s, w, nil)
		}
	})
}
