package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Authentication error codes, in the 70000 range, with HTTP status 401
// (70001 to 70004) or 403 (70005).
const (
	// CodeTokenMissing: the request carries no token.
	CodeTokenMissing = 70001
	// CodeTokenSignature: the token's signature does not match the secret.
	CodeTokenSignature = 70002
	// CodeTokenExpired: the token's expiry has passed.
	CodeTokenExpired = 70003
	// CodeTokenMalformed: the token is not of the form payload.signature,
	// or its payload is not the expected JSON.
	CodeTokenMalformed = 70004
	// CodeAdminRequired: the endpoint is for the administrator only.
	CodeAdminRequired = 70005
	// CodeOriginRefused: a WebSocket handshake from a page of another
	// origin (HTTP 403).
	CodeOriginRefused = 70006
)

// Limit codes, in the 70200 range.
const (
	// CodeTooManyConnections: the server holds -max-conns connections; the
	// new one is answered 503 and closed.
	CodeTooManyConnections = 70201
	// CodeTooManyEventConns: the user holds -max-event-conns-per-user
	// event connections (HTTP 429).
	CodeTooManyEventConns = 70202
)

// maxTokenLen bounds the tokens the server looks at.
const maxTokenLen = 1024

// maxUserIDLen matches the engine's default bound on user IDs.
const maxUserIDLen = 128

// identity is who a request comes from, as its token says.
type identity struct {
	// UserID is the token's user.
	UserID string
	// Admin is true when UserID is the configured administrator.
	Admin bool
}

// tokenPayload is the signed part of a token.
type tokenPayload struct {
	User string `json:"u"`
	Exp  int64  `json:"exp"`
}

// signer signs and checks tokens with one secret. Its HMACs are pooled:
// a token check costs one MAC computation, not a new keyed hash.
//
// Tokens it has verified are remembered (up to maxVerifiedTokens, then
// forgotten all at once): a client sends the same token with every call,
// and a remembered one costs a map lookup, not a MAC and a JSON parse.
// Only a token string equal to one that passed every check is found
// there, and its expiry is checked again at every use.
type signer struct {
	macs sync.Pool

	mu       sync.Mutex
	verified map[string]tokenPayload
}

// maxVerifiedTokens bounds the tokens a signer remembers.
const maxVerifiedTokens = 10000

func newSigner(secret []byte) *signer {
	key := slices.Clone(secret)
	return &signer{
		macs:     sync.Pool{New: func() any { return hmac.New(sha256.New, key) }},
		verified: make(map[string]tokenPayload),
	}
}

// tokenSigLen is the length of an encoded signature: base64url, unpadded,
// of the 32 bytes of an HMAC-SHA256.
var tokenSigLen = base64.RawURLEncoding.EncodedLen(sha256.Size)

// signature appends to dst the encoded signature of the encoded payload p.
func (sg *signer) signature(dst []byte, p string) []byte {
	mac := sg.macs.Get().(hash.Hash)
	mac.Reset()
	io.WriteString(mac, p)
	var sum [sha256.Size]byte
	mac.Sum(sum[:0])
	sg.macs.Put(mac)
	return base64.RawURLEncoding.AppendEncode(dst, sum[:])
}

// sign returns the token of userID expiring at exp: the base64url
// (unpadded) JSON payload, a dot, and the base64url HMAC-SHA256 of the
// encoded payload under the secret.
func (sg *signer) sign(userID string, exp time.Time) string {
	payload, _ := json.Marshal(tokenPayload{User: userID, Exp: exp.Unix()})
	return sg.signPayload(base64.RawURLEncoding.EncodeToString(payload))
}

// signPayload returns the token of an encoded payload p.
func (sg *signer) signPayload(p string) string {
	b := make([]byte, 0, len(p)+1+tokenSigLen)
	b = append(b, p...)
	b = append(b, '.')
	return string(sg.signature(b, p))
}

// signToken returns the token of userID expiring at exp, signed with
// secret.
func signToken(secret []byte, userID string, exp time.Time) string {
	return newSigner(secret).sign(userID, exp)
}

// signTokenPayload returns the token of an encoded payload p, signed with
// secret.
func signTokenPayload(secret []byte, p string) string {
	return newSigner(secret).signPayload(p)
}

// verifyToken checks token against secret at time now, with no bound on
// its lifetime, and returns its user.
func verifyToken(secret []byte, token string, now time.Time) (string, error) {
	return newSigner(secret).verify(token, now, 0)
}

// Token errors that carry nothing of the request.
var (
	errTokenMissing   = &apiError{Status: http.StatusUnauthorized, Code: CodeTokenMissing, Message: "readreceiptd: no token: send Authorization: Bearer <token>"}
	errTokenMalformed = &apiError{Status: http.StatusUnauthorized, Code: CodeTokenMalformed, Message: "readreceiptd: malformed token"}
	errTokenSignature = &apiError{Status: http.StatusUnauthorized, Code: CodeTokenSignature, Message: "readreceiptd: token signature does not match"}
	errTokenExpired   = &apiError{Status: http.StatusUnauthorized, Code: CodeTokenExpired, Message: "readreceiptd: token expired"}
)

// maxClockSkew is how far past -max-token-ttl a token's expiry may lie,
// for the clock of the host that signed it.
const maxClockSkew = time.Minute

// verify checks token at time now and returns its user. A token whose
// expiry lies more than maxTTL (plus maxClockSkew) ahead is refused as
// malformed; maxTTL 0 sets no bound.
//
// Decoding is strict: the signature must be exactly the 43 characters the
// server itself would write, so that one signature is valid in one
// spelling only (a lenient base64 decoder accepts other final characters,
// and skips line breaks).
func (sg *signer) verify(token string, now time.Time, maxTTL time.Duration) (string, error) {
	if token == "" {
		return "", errTokenMissing
	}
	malformed := errTokenMalformed
	if len(token) > maxTokenLen {
		return "", malformed
	}
	sg.mu.Lock()
	tp, known := sg.verified[token]
	sg.mu.Unlock()
	if known {
		if err := checkExpiry(tp, now, maxTTL); err != nil {
			return "", err
		}
		return tp.User, nil
	}
	p, sig, ok := strings.Cut(token, ".")
	if !ok || p == "" || len(sig) != tokenSigLen || !isBase64URL(sig) {
		return "", malformed
	}
	var buf [64]byte
	want := sg.signature(buf[:0], p)
	if subtle.ConstantTimeCompare(want, []byte(sig)) != 1 {
		return "", errTokenSignature
	}
	// The payload is only decoded once the signature holds: nothing an
	// outsider sends reaches the JSON decoder.
	raw, err := base64.RawURLEncoding.Strict().DecodeString(p)
	if err != nil || base64.RawURLEncoding.EncodedLen(len(raw)) != len(p) {
		return "", malformed
	}
	if err := json.Unmarshal(raw, &tp); err != nil || tp.User == "" || tp.Exp == 0 ||
		len(tp.User) > maxUserIDLen || !utf8.ValidString(tp.User) {
		return "", malformed
	}
	if err := checkExpiry(tp, now, maxTTL); err != nil {
		return "", err
	}
	sg.mu.Lock()
	if len(sg.verified) >= maxVerifiedTokens {
		clear(sg.verified)
	}
	sg.verified[token] = tp
	sg.mu.Unlock()
	return tp.User, nil
}

// checkExpiry refuses a token that has expired at now, or whose expiry
// lies more than maxTTL (plus maxClockSkew) ahead.
func checkExpiry(tp tokenPayload, now time.Time, maxTTL time.Duration) error {
	if now.Unix() >= tp.Exp {
		return errTokenExpired
	}
	if maxTTL > 0 && tp.Exp-now.Unix() > int64((maxTTL+maxClockSkew)/time.Second) {
		return &apiError{Status: http.StatusUnauthorized, Code: CodeTokenMalformed,
			Message: fmt.Sprintf("readreceiptd: token valid for longer than the server's -max-token-ttl (%v)", maxTTL)}
	}
	return nil
}

// isBase64URL reports whether s holds only characters of the base64url
// alphabet (no padding, no line breaks).
func isBase64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// mintToken returns a token for userID valid for ttl, signed with the
// server's secret.
func (s *server) mintToken(userID string, ttl time.Duration) string {
	return s.tokens.sign(userID, s.now().Add(ttl))
}

// requestToken returns the token of r: from the Authorization header
// ("Bearer <token>"), or else, when fromQuery is true, from the token
// query parameter. Only the WebSocket handshakes pass fromQuery: browsers
// cannot set headers on a WebSocket. A header of another scheme is a
// malformed token, not a missing one; a token in the query string of any
// other request is refused, so that clients do not leave tokens in URLs.
func requestToken(r *http.Request, fromQuery bool) (string, error) {
	if h := strings.TrimSpace(r.Header.Get("Authorization")); h != "" {
		scheme, tok, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return "", &apiError{Status: http.StatusUnauthorized, Code: CodeTokenMalformed, Message: "readreceiptd: the Authorization header must be Bearer <token>"}
		}
		return strings.TrimSpace(tok), nil
	}
	if r.URL.RawQuery == "" {
		return "", nil
	}
	if fromQuery {
		return r.URL.Query().Get("token"), nil
	}
	if r.URL.Query().Has("token") {
		return "", &apiError{Status: http.StatusUnauthorized, Code: CodeTokenMalformed,
			Message: "readreceiptd: a token in the query string is taken on WebSocket handshakes only: send Authorization: Bearer <token>"}
	}
	return "", nil
}

// authenticate returns the identity r's token names; fromQuery allows the
// token query parameter (WebSocket handshakes only). The error is an
// *apiError with status 401 and a code from 70001 to 70004.
func (s *server) authenticate(r *http.Request, fromQuery bool) (identity, error) {
	tok, err := requestToken(r, fromQuery)
	if err != nil {
		return identity{}, err
	}
	user, err := s.tokens.verify(tok, s.now(), s.cfg.MaxTokenTTL)
	if err != nil {
		return identity{}, err
	}
	return identity{UserID: user, Admin: user == s.cfg.Admin}, nil
}

// errAdminRequired is returned to a user token on an administrator endpoint.
var errAdminRequired = &apiError{Status: http.StatusForbidden, Code: CodeAdminRequired, Message: "readreceiptd: this endpoint is for the administrator"}
