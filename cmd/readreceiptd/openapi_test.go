package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// apiSpec is openapi.yaml, loaded and validated once per test binary.
type apiSpec struct {
	doc    *openapi3.T
	router routers.Router
}

var (
	specOnce sync.Once
	specVal  *apiSpec
	specErr  error
)

func loadSpec(t testing.TB) *apiSpec {
	t.Helper()
	specOnce.Do(func() {
		b, err := os.ReadFile("openapi.yaml")
		if err != nil {
			specErr = err
			return
		}
		doc, err := openapi3.NewLoader().LoadFromData(b)
		if err != nil {
			specErr = err
			return
		}
		if err := doc.Validate(context.Background()); err != nil {
			specErr = err
			return
		}
		// Route on paths only: the test servers listen on other ports
		// than the documented server.
		doc.Servers = nil
		r, err := legacy.NewRouter(doc)
		if err != nil {
			specErr = err
			return
		}
		specVal = &apiSpec{doc: doc, router: r}
	})
	if specErr != nil {
		t.Fatalf("openapi.yaml: %v", specErr)
	}
	return specVal
}

// check validates one exchange against the spec: the request (unless
// checkRequest is false, for requests that are invalid on purpose) and the
// response, whose status must be documented for the operation.
func (sp *apiSpec) check(req *http.Request, reqBody []byte, checkRequest bool, status int, header http.Header, respBody []byte) error {
	ctx := context.Background()
	// Route on a copy without the query string's token and with a fresh
	// body.
	r := req.Clone(ctx)
	r.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := sp.router.FindRoute(r)
	if err != nil {
		return err
	}
	in := &openapi3filter.RequestValidationInput{
		Request:    r,
		PathParams: params,
		Route:      route,
		Options: &openapi3filter.Options{
			AuthenticationFunc:    openapi3filter.NoopAuthenticationFunc,
			IncludeResponseStatus: true,
			MultiError:            true,
		},
	}
	if checkRequest {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			return err
		}
	}
	return openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(respBody)),
		Options:                in.Options,
	})
}

// eventSchema returns the schema of event messages.
func (sp *apiSpec) eventSchema() *openapi3.Schema {
	return sp.doc.Components.Schemas["EventMessage"].Value
}

// TestOpenAPIDetectsDrift makes sure the spec check used by every API test
// can fail: responses that differ from the spec in the ways a code change
// would make them differ are rejected, and the real shapes pass.
func TestOpenAPIDetectsDrift(t *testing.T) {
	sp := loadSpec(t)
	u, _ := url.Parse("http://127.0.0.1:1/v1/receipts/query")
	req := &http.Request{Method: http.MethodPost, URL: u, Header: http.Header{"Content-Type": {"application/json"}}}
	reqBody := []byte(`{"messageList":[{"ID":"m1","conversationType":"GROUP","to":"g1"}]}`)
	jsonHeader := http.Header{"Content-Type": {"application/json"}}
	good := `{"code":0,"data":{"messageList":[{"ID":"m1","conversationType":"GROUP","readReceiptInfo":{"readCount":1,"unreadCount":2,"isPeerRead":false,"deliveredCount":1,"undeliveredCount":2,"isPeerDelivered":false},"code":0,"message":""}]}}`
	if err := sp.check(req, reqBody, true, 200, jsonHeader, []byte(good)); err != nil {
		t.Fatalf("a response of the documented shape fails the check: %v", err)
	}
	for name, body := range map[string]string{
		"renamed field":  strings.Replace(good, `"readCount"`, `"read_count"`, 1),
		"extra field":    strings.Replace(good, `"code":0,"message":""`, `"code":0,"message":"","extra":1`, 1),
		"wrong type":     strings.Replace(good, `"readCount":1`, `"readCount":"1"`, 1),
		"missing field":  strings.Replace(good, `,"isPeerRead":false`, ``, 1),
		"unlisted code":  strings.Replace(good, `"code":0,"message":""`, `"code":12345,"message":"x"`, 1),
		"nonzero top":    strings.Replace(good, `{"code":0,"data"`, `{"code":1,"data"`, 1),
		"negative count": strings.Replace(good, `"unreadCount":2`, `"unreadCount":-1`, 1),
	} {
		if err := sp.check(req, reqBody, true, 200, jsonHeader, []byte(body)); err == nil {
			t.Errorf("%s: a drifted response passes the check: %s", name, body)
		}
	}
	if err := sp.check(req, reqBody, true, http.StatusTeapot, jsonHeader, []byte(`{"code":10004,"message":"x"}`)); err == nil {
		t.Error("an undocumented status passes the check")
	}
	if err := sp.check(req, reqBody, true, 401, jsonHeader, []byte(`{"code":10004,"message":"x"}`)); err == nil {
		t.Error("a 401 with a code outside 70001-70004 passes the check")
	}
	if err := sp.check(req, []byte(`{"messageList":[{"ID":"m1","conversationType":"GROUPS","to":"g1"}]}`), true, 200, jsonHeader, []byte(good)); err == nil {
		t.Error("a request with an undocumented conversation type passes the check")
	}
}
