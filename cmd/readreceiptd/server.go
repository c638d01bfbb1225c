package main

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/readreceipt/readreceipt"
)

// openAPISpec documents the API; it is served at /openapi.yaml.
//
//go:embed openapi.yaml
var openAPISpec []byte

// server serves the HTTP/JSON API, the event WebSocket and the operations
// endpoints over one engine.
type server struct {
	cfg     config
	eng     *readreceipt.Engine
	log     *slog.Logger
	secret  []byte
	metrics *metrics
	hub     *hub
	now     func() time.Time

	// handler is the full handler: the routes, each behind serveEndpoint.
	handler http.Handler
	// mux routes requests; the fallback consults it to answer 405.
	mux *http.ServeMux
	// tokens signs and checks tokens with the secret.
	tokens *signer
	// listener caps the connections; set by serve before it reports ready.
	listener *limitListener
	// stopping is set when shutdown begins; /healthz then answers 503.
	stopping atomic.Bool
	// unsubscribe detaches the event hub from the engine.
	unsubscribe func()
	// handlers counts requests in progress, WebSockets included, which
	// http.Server.Shutdown does not wait for once hijacked.
	handlers sync.WaitGroup
	// closers stop what the server started beside its handlers (the
	// demo's town hall); close calls them.
	closers []func()
}

// newServer builds the server over eng. It subscribes to the engine's
// events; call close to undo that.
func newServer(cfg config, secret []byte, eng *readreceipt.Engine, logger *slog.Logger) (*server, error) {
	s := &server{
		cfg:     cfg,
		eng:     eng,
		log:     logger,
		secret:  secret,
		metrics: newMetrics(),
		now:     time.Now,
		tokens:  newSigner(secret),
	}
	s.hub = newHub(s.metrics, logger, cfg.EventQueue, cfg.MaxEventConnsPerUser)
	mux := http.NewServeMux()
	s.mux = mux
	s.routes(mux)
	if cfg.Demo {
		if err := s.registerDemo(mux); err != nil {
			return nil, fmt.Errorf("demo page: %w", err)
		}
	}
	s.handler = mux
	unsub := eng.Subscribe(s.hub.publish)
	unsubOwn := eng.SubscribeOwnReads(s.hub.publishOwn)
	s.unsubscribe = func() { unsub(); unsubOwn() }
	return s, nil
}

// handler is the shape of every endpoint: it writes its own success
// response and returns an error for anything else. serveEndpoint turns
// the error into the JSON error response, counts it and logs it, so that
// no handler writes an error itself.
type handler func(w http.ResponseWriter, r *http.Request) error

// routes registers every endpoint of the API. Every route goes through
// serveEndpoint; the catch-all "/" answers 404 or 405 in the API's shape,
// so the mux never writes a plain-text answer of its own.
func (s *server) routes(mux *http.ServeMux) {
	handle := func(pattern string, h handler) { mux.Handle(pattern, s.serveEndpoint(h)) }
	handle("POST /v1/messages", s.admin(s.handleTrack))
	handle("POST /v1/messages/delete", s.admin(s.handleDelete))
	handle("POST /v1/receipts", s.user(s.handleSendReceipts))
	handle("POST /v1/receipts/query", s.user(s.handleQuery))
	handle("POST /v1/receipts/members", s.user(s.handleMembers))
	handle("POST /v1/receipts/delivered", s.user(s.handleSendDelivered))
	handle("POST /v1/receipts/state", s.user(s.handleReadState))
	handle("POST /v1/receipts/read-times", s.user(s.handleReadTimes))
	handle("POST /v1/conversations/read-mark", s.user(s.handleMarkRead))
	handle("GET /v1/conversations/read-mark", s.user(s.handleGetMark))
	handle("PUT /v1/me/privacy", s.user(s.handleSetPrivacy))
	handle("GET /v1/me/privacy", s.user(s.handleGetPrivacy))
	handle("POST /v1/groups", s.admin(s.handleCreateGroup))
	handle("GET /v1/groups/{groupID}", s.admin(s.handleGetGroup))
	handle("POST /v1/groups/{groupID}/members", s.admin(s.handleAddMembers))
	handle("POST /v1/groups/{groupID}/members/remove", s.admin(s.handleRemoveMembers))
	handle("DELETE /v1/groups/{groupID}", s.admin(s.handleDismissGroup))
	handle("GET /v1/events", s.handleEvents)
	handle("GET /healthz", s.handleHealth)
	metricsHandler := s.metrics.handler()
	handle("GET /metrics", func(w http.ResponseWriter, r *http.Request) error {
		metricsHandler.ServeHTTP(w, r)
		return nil
	})
	handle("GET /openapi.yaml", func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(openAPISpec)
		return nil
	})
	handle("/", s.handleNoRoute)
}

// ServeHTTP serves every endpoint.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

// close stops what the server runs in the background (the demo's town
// hall: its creation and its crowd, waited for), detaches the server from
// the engine's events and closes every event connection with
// StatusGoingAway. It does not close the engine.
func (s *server) close() {
	for _, c := range s.closers {
		c()
	}
	s.unsubscribe()
	s.hub.close()
}

// user wraps a handler that any valid token may call. The token comes
// from the Authorization header only.
func (s *server) user(h func(http.ResponseWriter, *http.Request, identity) error) handler {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, err := s.authenticate(r, false)
		if err != nil {
			return err
		}
		return h(w, r, id)
	}
}

// admin wraps a handler that only the administrator's token may call.
func (s *server) admin(h func(http.ResponseWriter, *http.Request, identity) error) handler {
	return s.user(func(w http.ResponseWriter, r *http.Request, id identity) error {
		if !id.Admin {
			return errAdminRequired
		}
		return h(w, r, id)
	})
}

func (s *server) handleHealth(w http.ResponseWriter, r *http.Request) error {
	if s.stopping.Load() {
		writeJSON(w, http.StatusServiceUnavailable, healthBody{Code: readreceipt.CodeClosed, Status: "stopping"})
		return nil
	}
	// Not ready while the engine cannot reach its state (Redis down or
	// failing over); the embedded store always answers.
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.eng.Ping(ctx); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, healthBody{Code: readreceipt.CodeUnavailable, Status: "state unreachable"})
		return nil
	}
	writeJSON(w, http.StatusOK, healthBody{Code: 0, Status: "ok"})
	return nil
}

// healthBody is the answer of /healthz.
type healthBody struct {
	Code   int    `json:"code"`
	Status string `json:"status"`
}

// probeMethods are the methods the fallback tries when it works out the
// Allow header of a path.
var probeMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// handleNoRoute answers what no other pattern matched: 405 with Allow when
// the path exists for other methods, 404 otherwise, both as API errors.
func (s *server) handleNoRoute(w http.ResponseWriter, r *http.Request) error {
	var allow []string
	probe := *r
	for _, m := range probeMethods {
		probe.Method = m
		if _, pattern := s.mux.Handler(&probe); pattern != "" && pattern != "/" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		a := strings.Join(allow, ", ")
		return &apiError{
			Status:  http.StatusMethodNotAllowed,
			Code:    readreceipt.CodeInvalidParameter,
			Message: fmt.Sprintf("readreceiptd: %s %s is not allowed; allowed: %s", r.Method, r.URL.Path, a),
			Header:  http.Header{"Allow": {a}},
		}
	}
	return &apiError{
		Status:  http.StatusNotFound,
		Code:    readreceipt.CodeInvalidParameter,
		Message: fmt.Sprintf("readreceiptd: no endpoint %s %s", r.Method, r.URL.Path),
	}
}

// apiError is an error the server itself reports, with its HTTP status.
type apiError struct {
	Status  int
	Code    int
	Message string
	// Header, if set, holds headers sent with the error (Allow, Upgrade).
	Header http.Header
}

func (e *apiError) Error() string { return e.Message }

// okBody and errorBody are the two shapes of every API response.
type okBody struct {
	Code int `json:"code"`
	Data any `json:"data"`
}

type errorBody struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// jsonBuffer is a pooled response buffer with its encoder.
type jsonBuffer struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var jsonBuffers = sync.Pool{New: func() any {
	jb := &jsonBuffer{}
	jb.enc = json.NewEncoder(&jb.buf)
	jb.enc.SetEscapeHTML(false)
	return jb
}}

// maxPooledBuffer is the largest buffer put back in a pool; a rare large
// answer (a long member page) does not pin its memory.
const maxPooledBuffer = 64 << 10

// Shared header values; net/http only reads them.
var (
	hdrJSON    = []string{"application/json"}
	hdrNoStore = []string{"no-store"}
)

// writeJSON writes v as the JSON body of a response with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	jb := jsonBuffers.Get().(*jsonBuffer)
	jb.buf.Reset()
	if err := jb.enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		jb.buf.Reset()
		jb.buf.WriteString(`{"code":10002,"message":"readreceiptd: cannot encode the response"}` + "\n")
	}
	writeBody(w, status, jb, jb.buf.Bytes())
}

// writeBody writes body, a JSON text held in (or grown from) jb's buffer,
// as a response with status, and gives jb back to the pool.
func writeBody(w http.ResponseWriter, status int, jb *jsonBuffer, body []byte) {
	h := w.Header()
	h["Content-Type"] = hdrJSON
	h["Cache-Control"] = hdrNoStore
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	w.Write(body)
	if cap(body) <= maxPooledBuffer {
		// Keep the grown storage for the next answer.
		jb.buf = *bytes.NewBuffer(body[:0])
		jsonBuffers.Put(jb)
	}
}

// writeOK writes a success response: {"code":0,"data":data}.
func writeOK(w http.ResponseWriter, data any) {
	writeJSON(w, http.StatusOK, okBody{Code: 0, Data: data})
}

// writeError writes err as {"code":n,"message":"..."} with the HTTP status
// its code maps to (see statusOf), and returns the code. Errors that are
// neither engine errors nor the server's own are reported as 10002 with
// status 500, and their text is not sent. A 401 carries WWW-Authenticate.
func writeError(w http.ResponseWriter, err error) int {
	status, body := errorResponse(err)
	var ae *apiError
	if errors.As(err, &ae) {
		for k, v := range ae.Header {
			w.Header()[k] = v
		}
	}
	if status == http.StatusUnauthorized {
		challenge := `Bearer realm="readreceiptd"`
		if body.Code != CodeTokenMissing {
			challenge += `, error="invalid_token"`
		}
		w.Header().Set("WWW-Authenticate", challenge)
	}
	writeJSON(w, status, body)
	return body.Code
}

// errorResponse returns the status and body that report err.
func errorResponse(err error) (int, errorBody) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.Status, errorBody{Code: ae.Code, Message: ae.Message}
	}
	var ee *readreceipt.Error
	if errors.As(err, &ee) {
		return statusOf(ee.Code), errorBody{Code: ee.Code, Message: ee.Error()}
	}
	return http.StatusInternalServerError, errorBody{Code: readreceipt.CodeInternal, Message: "readreceiptd: internal error"}
}

// statusOf maps an engine error code to the HTTP status of a call that
// failed as a whole with it.
func statusOf(code int) int {
	switch code {
	case readreceipt.CodeInvalidParameter, readreceipt.CodeInvalidGroupID,
		readreceipt.CodeTooManyMessages, readreceipt.CodePageTooLarge,
		readreceipt.CodeMixedConversations, readreceipt.CodeInvalidCursor,
		readreceipt.CodeOwnMessage, readreceipt.CodeNotRecipient,
		readreceipt.CodeGroupTypeDisabled:
		return http.StatusBadRequest
	case readreceipt.CodePermissionDenied, readreceipt.CodePrivateReceipts:
		return http.StatusForbidden
	case readreceipt.CodeGroupNotFound, readreceipt.CodeReceiptNotFound:
		return http.StatusNotFound
	case readreceipt.CodeGroupExists, readreceipt.CodeAlreadyTracked:
		return http.StatusConflict
	case readreceipt.CodeFeatureDisabled, readreceipt.CodeClosed, readreceipt.CodeUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// recorder wraps a ResponseWriter to learn the status of the response, for
// logs and metrics. serveEndpoint creates it and hands it to the handler.
type recorder struct {
	http.ResponseWriter
	status   int
	hijacked bool
}

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Hijack lets the event endpoints take over the connection.
func (r *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(r.ResponseWriter).Hijack()
	if err == nil {
		r.hijacked = true
		if r.status == 0 {
			r.status = http.StatusSwitchingProtocols
		}
	}
	return c, rw, err
}

// Flush sends buffered data to the client.
func (r *recorder) Flush() {
	http.NewResponseController(r.ResponseWriter).Flush()
}

var recorders = sync.Pool{New: func() any { return new(recorder) }}

// Security headers sent with every response. The demo page replaces the
// Content-Security-Policy with its own.
var (
	hdrNosniff  = []string{"nosniff"}
	hdrNoFrames = []string{"DENY"}
	hdrNoRef    = []string{"no-referrer"}
	hdrCSP      = []string{"default-src 'none'; frame-ancestors 'none'"}
)

// serveEndpoint is the one adapter between net/http and the server's
// handlers. It sets the security headers, runs h, writes h's error as the
// JSON error response (unless h had already begun its answer), recovers a
// panic as a 500, records the endpoint and code in the metrics and writes
// the access log. The log names the path only: never the query string
// (which may hold a token) nor any header.
func (s *server) serveEndpoint(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		s.handlers.Add(1)
		defer s.handlers.Done()
		hdr := w.Header()
		hdr["X-Content-Type-Options"] = hdrNosniff
		hdr["X-Frame-Options"] = hdrNoFrames
		hdr["Referrer-Policy"] = hdrNoRef
		hdr["Content-Security-Policy"] = hdrCSP
		rec := recorders.Get().(*recorder)
		*rec = recorder{ResponseWriter: w}
		code := 0
		var failure error
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p))
				failure = errors.New("panic")
				if rec.status == 0 && !rec.hijacked {
					code = writeError(rec, failure)
				} else {
					code = readreceipt.CodeInternal
				}
			}
			s.finish(r, rec, code, failure, time.Since(start))
			*rec = recorder{}
			recorders.Put(rec)
		}()
		if err := h(rec, r); err != nil {
			failure = err
			if rec.status == 0 && !rec.hijacked {
				code = writeError(rec, err)
			} else {
				_, body := errorResponse(err)
				code = body.Code
			}
		}
	})
}

// finish records one request in the metrics and the access log, with its
// API code. The error of a 5xx answer is logged with its text; others are
// known by their code (their messages may quote what the client sent).
func (s *server) finish(r *http.Request, rec *recorder, code int, failure error, d time.Duration) {
	endpoint := r.Pattern
	if endpoint == "" || endpoint == "/" {
		endpoint = "unmatched"
	}
	status := rec.status
	if status == 0 {
		status = http.StatusOK
	}
	s.metrics.observe(endpoint, code, d)
	level := slog.LevelInfo
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path),
		slog.String("endpoint", endpoint),
		slog.Int("status", status),
		slog.Int("code", code),
		slog.Duration("duration", d),
		slog.String("remote", r.RemoteAddr),
	}
	if failure != nil && status >= 500 {
		// The client was told "internal error" only; the log keeps why.
		level = slog.LevelError
		attrs = append(attrs, slog.String("error", failure.Error()))
	}
	s.log.LogAttrs(r.Context(), level, "request", attrs...)
}
