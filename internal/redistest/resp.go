package redistest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// ReplyError is an error reply ("-ERR ...", "-MOVED ...") from the server.
type ReplyError string

func (e ReplyError) Error() string { return string(e) }

// doTimeout bounds one round trip of [Server.Do]: dial, write and read.
const doTimeout = 5 * time.Second

// maxBulk bounds a bulk string the client accepts, so that a corrupt length
// does not make it allocate without limit.
const maxBulk = 64 << 20

// Do sends one command on a new connection and returns the reply:
// a string for simple and bulk strings, an int64 for integers, []any for
// arrays, nil for the null bulk string or array, and a [ReplyError] as the
// error for an error reply. It opens and closes a connection per call, so it
// is safe to use from several goroutines; it is meant for the helper's and
// tests' bookkeeping (INFO, CLUSTER NODES, CONFIG GET, a few SETs), not for
// load.
func (s *Server) Do(args ...string) (any, error) {
	return do(s.Addr, args...)
}

// DoString is [Server.Do] for commands whose reply is a string (simple or
// bulk), such as INFO, GET or CLUSTER NODES. A null reply is an error.
func (s *Server) DoString(args ...string) (string, error) {
	v, err := s.Do(args...)
	if err != nil {
		return "", err
	}
	str, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("redistest: %s: reply %#v is not a string", strings.Join(args, " "), v)
	}
	return str, nil
}

func do(addr string, args ...string) (any, error) {
	replies, err := pipeline(addr, [][]string{args})
	if err != nil {
		return nil, err
	}
	if e, ok := replies[0].(ReplyError); ok {
		return nil, e
	}
	return replies[0], nil
}

// Pipeline sends cmds on one connection, in order, and returns their
// replies, which are as for [Server.Do] except that an error reply is a
// [ReplyError] element of the slice; the error is for the connection. It is
// for what depends on the connection, which Do's connection per call loses:
// a WAIT for the replicas to acknowledge the writes before it, MULTI and
// EXEC, READONLY before reading from a cluster replica. It writes every
// command before reading a reply, so keep it to a handful of commands.
func (s *Server) Pipeline(cmds ...[]string) ([]any, error) {
	return pipeline(s.Addr, cmds)
}

func pipeline(addr string, cmds [][]string) ([]any, error) {
	if len(cmds) == 0 {
		return nil, errors.New("redistest: no command")
	}
	var req []byte
	for _, args := range cmds {
		if len(args) == 0 {
			return nil, errors.New("redistest: empty command")
		}
		req = append(req, encodeCommand(args)...)
	}
	conn, err := net.DialTimeout("tcp", addr, doTimeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(doTimeout)); err != nil {
		return nil, err
	}
	if _, err := conn.Write(req); err != nil {
		return nil, err
	}
	r := bufio.NewReader(conn)
	replies := make([]any, len(cmds))
	for i := range replies {
		if replies[i], err = readValue(r); err != nil {
			return nil, err
		}
	}
	return replies, nil
}

// encodeCommand writes args as a RESP array of bulk strings.
func encodeCommand(args []string) []byte {
	b := make([]byte, 0, 64)
	b = append(b, '*')
	b = strconv.AppendInt(b, int64(len(args)), 10)
	b = append(b, '\r', '\n')
	for _, a := range args {
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(len(a)), 10)
		b = append(b, '\r', '\n')
		b = append(b, a...)
		b = append(b, '\r', '\n')
	}
	return b
}

// readValue reads one RESP2 reply; an error reply is a ReplyError value.
func readValue(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if len(line) < 3 || line[len(line)-2] != '\r' {
		return nil, fmt.Errorf("redistest: malformed reply line %q", line)
	}
	kind, body := line[0], line[1:len(line)-2]
	switch kind {
	case '+':
		return body, nil
	case '-':
		return ReplyError(body), nil
	case ':':
		n, err := strconv.ParseInt(body, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("redistest: malformed integer reply %q", body)
		}
		return n, nil
	case '$':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 || n > maxBulk {
			return nil, fmt.Errorf("redistest: malformed bulk length %q", body)
		}
		if n == -1 {
			return nil, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		if buf[n] != '\r' || buf[n+1] != '\n' {
			return nil, errors.New("redistest: bulk string not terminated by CRLF")
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(body)
		if err != nil || n < -1 || n > maxBulk {
			return nil, fmt.Errorf("redistest: malformed array length %q", body)
		}
		if n == -1 {
			return nil, nil
		}
		arr := make([]any, n)
		for i := range arr {
			if arr[i], err = readValue(r); err != nil {
				return nil, err
			}
		}
		return arr, nil
	default:
		return nil, fmt.Errorf("redistest: unknown reply type %q", line)
	}
}

// ParseInfo parses the "field:value" lines of INFO or CLUSTER INFO into a
// map; section headers ("# Replication") and blank lines are skipped.
func ParseInfo(s string) map[string]string {
	m := make(map[string]string)
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// Info runs INFO section and parses the reply with [ParseInfo].
func (s *Server) Info(section string) (map[string]string, error) {
	str, err := s.DoString("INFO", section)
	if err != nil {
		return nil, err
	}
	return ParseInfo(str), nil
}

// ClusterInfo runs CLUSTER INFO and parses the reply with [ParseInfo].
func (s *Server) ClusterInfo() (map[string]string, error) {
	str, err := s.DoString("CLUSTER", "INFO")
	if err != nil {
		return nil, err
	}
	return ParseInfo(str), nil
}
