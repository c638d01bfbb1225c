// Command helper supports bench/http/run: it serves the floor (a trivial
// net/http JSON handler the server is compared with), and prepares a
// readreceiptd for the run (a group, tracked messages, tokens and request
// bodies for wrk's scripts).
//
// It mints tokens from the format readreceiptd documents (base64url JSON
// payload, a dot, base64url HMAC-SHA256 of the payload), not with the
// server's code, so the run also checks that the documented format holds.
//
// Usage:
//
//	helper floor -addr 127.0.0.1:8090
//	helper setup -url http://127.0.0.1:8091 -secret S -admin A -members N -messages M -out DIR
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: helper floor|setup [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "floor":
		err = floor(os.Args[2:])
	case "setup":
		err = setup(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
}

// floor serves every request with a small JSON answer after reading its
// body: the least an HTTP/JSON server can do per call.
func floor(args []string) error {
	fs := flag.NewFlagSet("floor", flag.ExitOnError)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address")
	fs.Parse(args)
	answer := []byte(`{"code":0,"data":{}}` + "\n")
	return http.ListenAndServe(*addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Write(answer)
	}))
}

func token(secret []byte, user string, ttl time.Duration) string {
	payload, _ := json.Marshal(map[string]any{"u": user, "exp": time.Now().Add(ttl).Unix()})
	p := base64.RawURLEncoding.EncodeToString(payload)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(p))
	return p + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// setup creates the group "bench" of -members users (user00001... and the
// sender "sender"), tracks -messages messages of the sender, and writes
// to -out: tokens.txt (one reader token a line), sender.txt (the
// sender's token), batches.txt (one receipt/count body a line, of 10
// messages each) and members.json (a member-page body).
func setup(args []string) error {
	fs := flag.NewFlagSet("setup", flag.ExitOnError)
	base := fs.String("url", "", "readreceiptd's base URL")
	secret := fs.String("secret", "", "the server's secret")
	admin := fs.String("admin", "administrator", "the server's administrator")
	members := fs.Int("members", 10000, "group size")
	messages := fs.Int("messages", 100, "tracked messages (a multiple of 10)")
	out := fs.String("out", "", "output directory")
	fs.Parse(args)
	key := []byte(*secret)
	adminTok := token(key, *admin, time.Hour)
	call := func(path string, body any) error {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", *base+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+adminTok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("%s: HTTP %d %s", path, resp.StatusCode, rb)
		}
		return nil
	}
	list := []string{"sender"}
	var toks strings.Builder
	for i := 1; i < *members; i++ {
		u := fmt.Sprintf("user%05d", i)
		list = append(list, u)
		toks.WriteString(token(key, u, time.Hour) + "\n")
	}
	if err := call("/v1/groups", map[string]any{"groupID": "bench", "memberList": list}); err != nil {
		return err
	}
	msg := func(i int) map[string]any {
		return map[string]any{"ID": fmt.Sprintf("m%04d", i), "conversationType": "GROUP", "to": "bench", "from": "sender"}
	}
	var batches strings.Builder
	for i := range *messages {
		m := msg(i)
		m["needReadReceipt"] = true
		if err := call("/v1/messages", m); err != nil {
			return err
		}
	}
	for b := 0; b < *messages/10; b++ {
		var l []map[string]any
		for i := b * 10; i < (b+1)*10; i++ {
			l = append(l, msg(i))
		}
		line, _ := json.Marshal(map[string]any{"messageList": l})
		batches.Write(line)
		batches.WriteByte('\n')
	}
	page, _ := json.Marshal(map[string]any{"message": msg(0), "filter": 1, "count": 50})
	for name, data := range map[string]string{
		"tokens.txt":   toks.String(),
		"sender.txt":   token(key, "sender", time.Hour) + "\n",
		"batches.txt":  batches.String(),
		"members.json": string(page) + "\n",
	} {
		if err := os.WriteFile(filepath.Join(*out, name), []byte(data), 0o600); err != nil {
			return err
		}
	}
	return nil
}
