package main

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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

	// handler is the full handler: routes wrapped in logging, metrics and
	// panic recovery.
	handler http.Handler
	// stopping is set when shutdown begins; /healthz then answers 503.
	stopping atomic.Bool
	// unsubscribe detaches the event hub from the engine.
	unsubscribe func()
	// handlers counts requests in progress, WebSockets included, which
	// http.Server.Shutdown does not wait for once hijacked.
	handlers sync.WaitGroup
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
	}
	s.hub = newHub(s.metrics, logger, cfg.EventQueue)
	mux := http.NewServeMux()
	s.routes(mux)
	if cfg.Demo {
		if err := s.registerDemo(mux); err != nil {
			return nil, fmt.Errorf("demo page: %w", err)
		}
	}
	s.handler = s.instrument(mux)
	s.unsubscribe = eng.Subscribe(s.hub.publish)
	return s, nil
}

// routes registers every endpoint of the API.
func (s *server) routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/messages", s.admin(s.handleTrack))
	mux.HandleFunc("POST /v1/messages/delete", s.admin(s.handleDelete))
	mux.HandleFunc("POST /v1/receipts", s.user(s.handleSendReceipts))
	mux.HandleFunc("POST /v1/receipts/query", s.user(s.handleQuery))
	mux.HandleFunc("POST /v1/receipts/members", s.user(s.handleMembers))
	mux.HandleFunc("POST /v1/groups", s.admin(s.handleCreateGroup))
	mux.HandleFunc("GET /v1/groups/{groupID}", s.admin(s.handleGetGroup))
	mux.HandleFunc("POST /v1/groups/{groupID}/members", s.admin(s.handleAddMembers))
	mux.HandleFunc("POST /v1/groups/{groupID}/members/remove", s.admin(s.handleRemoveMembers))
	mux.HandleFunc("DELETE /v1/groups/{groupID}", s.admin(s.handleDismissGroup))
	mux.HandleFunc("GET /v1/events", s.handleEvents)
	mux.HandleFunc("/v1/", s.handleNoRoute)
	mux.HandleFunc("GET /healthz", s.handleHealth)
	mux.Handle("GET /metrics", s.metrics.handler())
	mux.HandleFunc("GET /openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(openAPISpec)
	})
}

// ServeHTTP serves every endpoint.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

// close detaches the server from the engine's events and closes every
// event connection with StatusGoingAway. It does not close the engine.
func (s *server) close() {
	s.unsubscribe()
	s.hub.close()
}

// user wraps a handler that any valid token may call.
func (s *server) user(h func(http.ResponseWriter, *http.Request, identity)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := s.authenticate(r)
		if err != nil {
			writeError(w, err)
			return
		}
		h(w, r, id)
	}
}

// admin wraps a handler that only the administrator's token may call.
func (s *server) admin(h func(http.ResponseWriter, *http.Request, identity)) http.HandlerFunc {
	return s.user(func(w http.ResponseWriter, r *http.Request, id identity) {
		if !id.Admin {
			writeError(w, errAdminRequired)
			return
		}
		h(w, r, id)
	})
}

func (s *server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if s.stopping.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "stopping"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *server) handleNoRoute(w http.ResponseWriter, r *http.Request) {
	writeError(w, &apiError{
		Status:  http.StatusNotFound,
		Code:    readreceipt.CodeInvalidParameter,
		Message: fmt.Sprintf("readreceiptd: no endpoint %s %s", r.Method, r.URL.Path),
	})
}

// apiError is an error the server itself reports, with its HTTP status.
type apiError struct {
	Status  int
	Code    int
	Message string
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

// writeJSON writes v as the JSON body of a response with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"code":10002,"message":"readreceiptd: cannot encode the response"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// writeOK writes a success response: {"code":0,"data":data}.
func writeOK(w http.ResponseWriter, data any) {
	writeJSON(w, http.StatusOK, okBody{Code: 0, Data: data})
}

// writeError writes err as {"code":n,"message":"..."} with the HTTP status
// its code maps to (see statusOf). Errors that are neither engine errors
// nor the server's own are reported as 10002 with status 500, and their
// text is not sent.
func writeError(w http.ResponseWriter, err error) {
	status, body := errorResponse(err)
	if rec, ok := w.(*recorder); ok {
		rec.code = body.Code
	}
	writeJSON(w, status, body)
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
	case readreceipt.CodePermissionDenied:
		return http.StatusForbidden
	case readreceipt.CodeGroupNotFound, readreceipt.CodeReceiptNotFound:
		return http.StatusNotFound
	case readreceipt.CodeGroupExists, readreceipt.CodeAlreadyTracked:
		return http.StatusConflict
	case readreceipt.CodeFeatureDisabled, readreceipt.CodeClosed:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// recorder wraps a ResponseWriter to learn the status and API code of the
// response, for logs and metrics.
type recorder struct {
	http.ResponseWriter
	status int
	// code is the API code of an error response; 0 otherwise.
	code     int
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

// Hijack lets the event endpoint take over the connection.
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

// instrument wraps h with panic recovery, metrics and an access log.
// The log names the path only: never the query string (which may hold a
// token) nor any header.
func (s *server) instrument(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		s.handlers.Add(1)
		defer s.handlers.Done()
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p))
				if rec.status == 0 && !rec.hijacked {
					writeError(rec, errors.New("panic"))
				}
			}
			endpoint := r.Pattern
			if endpoint == "" {
				endpoint = "unmatched"
			}
			d := time.Since(start)
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			s.metrics.observe(endpoint, rec.code, d)
			s.log.LogAttrs(r.Context(), slog.LevelInfo, "request",
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.String("endpoint", endpoint),
				slog.Int("status", status),
				slog.Int("code", rec.code),
				slog.Duration("duration", d),
				slog.String("remote", r.RemoteAddr),
			)
		}()
		h.ServeHTTP(rec, r)
	})
}
