package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
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

// signToken returns the token of userID expiring at exp: the base64url
// (unpadded) JSON payload, a dot, and the base64url HMAC-SHA256 of the
// encoded payload under secret.
func signToken(secret []byte, userID string, exp time.Time) string {
	payload, _ := json.Marshal(tokenPayload{User: userID, Exp: exp.Unix()})
	return signTokenPayload(secret, base64.RawURLEncoding.EncodeToString(payload))
}

// signTokenPayload returns the token of an encoded payload p.
func signTokenPayload(secret []byte, p string) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(p))
	return p + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// verifyToken checks token against secret at time now and returns its user.
func verifyToken(secret []byte, token string, now time.Time) (string, error) {
	if token == "" {
		return "", &apiError{Status: http.StatusUnauthorized, Code: CodeTokenMissing, Message: "readreceiptd: no token: send Authorization: Bearer <token>"}
	}
	malformed := &apiError{Status: http.StatusUnauthorized, Code: CodeTokenMalformed, Message: "readreceiptd: malformed token"}
	if len(token) > maxTokenLen {
		return "", malformed
	}
	p, sig, ok := strings.Cut(token, ".")
	if !ok || p == "" || sig == "" {
		return "", malformed
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return "", malformed
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(p))
	if !hmac.Equal(got, mac.Sum(nil)) {
		return "", &apiError{Status: http.StatusUnauthorized, Code: CodeTokenSignature, Message: "readreceiptd: token signature does not match"}
	}
	// The payload is only decoded once the signature holds: nothing an
	// outsider sends reaches the JSON decoder.
	raw, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil {
		return "", malformed
	}
	var tp tokenPayload
	if err := json.Unmarshal(raw, &tp); err != nil || tp.User == "" || tp.Exp == 0 ||
		len(tp.User) > maxUserIDLen || !utf8.ValidString(tp.User) {
		return "", malformed
	}
	if now.Unix() >= tp.Exp {
		return "", &apiError{Status: http.StatusUnauthorized, Code: CodeTokenExpired, Message: "readreceiptd: token expired"}
	}
	return tp.User, nil
}

// mintToken returns a token for userID valid for ttl, signed with the
// server's secret.
func (s *server) mintToken(userID string, ttl time.Duration) string {
	return signToken(s.secret, userID, s.now().Add(ttl))
}

// requestToken returns the token of r: from the Authorization header
// ("Bearer <token>"), or else from the token query parameter, which is
// there for WebSocket clients in browsers, as they cannot set headers.
// A header of another scheme is a malformed token, not a missing one.
func requestToken(r *http.Request) (string, error) {
	if h := strings.TrimSpace(r.Header.Get("Authorization")); h != "" {
		scheme, tok, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return "", &apiError{Status: http.StatusUnauthorized, Code: CodeTokenMalformed, Message: "readreceiptd: the Authorization header must be Bearer <token>"}
		}
		return strings.TrimSpace(tok), nil
	}
	return r.URL.Query().Get("token"), nil
}

// authenticate returns the identity r's token names. The error is an
// *apiError with status 401 and a code from 70001 to 70004.
func (s *server) authenticate(r *http.Request) (identity, error) {
	tok, err := requestToken(r)
	if err != nil {
		return identity{}, err
	}
	user, err := verifyToken(s.secret, tok, s.now())
	if err != nil {
		return identity{}, err
	}
	return identity{UserID: user, Admin: user == s.cfg.Admin}, nil
}

// errAdminRequired is returned to a user token on an administrator endpoint.
var errAdminRequired = &apiError{Status: http.StatusForbidden, Code: CodeAdminRequired, Message: "readreceiptd: this endpoint is for the administrator"}
