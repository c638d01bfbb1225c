package main

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// limitListener caps the connections open at once. Over the cap, a new
// connection is answered at once with a 503 API error and closed, so that
// a flood of idle or slow clients cannot exhaust the server's file
// descriptors: the deadlines of http.Server then free each slot within
// -read-timeout (or -idle-timeout between requests).
type limitListener struct {
	net.Listener
	slots   chan struct{}
	refused prometheus.Counter
}

func newLimitListener(ln net.Listener, n int, refused prometheus.Counter) *limitListener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, n), refused: refused}
}

// refusal is the whole answer to a connection over the cap.
var refusal = func() []byte {
	body := fmt.Sprintf(`{"code":%d,"message":"readreceiptd: too many connections; try again later"}`+"\n", CodeTooManyConnections)
	return []byte(fmt.Sprintf("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"+
		"X-Content-Type-Options: nosniff\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body))
}()

// refusalWriteTimeout bounds the write of the refusal; a new connection's
// send buffer is empty, so it does not block in practice.
const refusalWriteTimeout = 100 * time.Millisecond

// Accept returns the next connection within the cap.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			return &limitConn{Conn: c, l: l}, nil
		default:
			l.refused.Inc()
			c.SetWriteDeadline(time.Now().Add(refusalWriteTimeout))
			c.Write(refusal)
			c.Close()
		}
	}
}

// limitConn gives its slot back when closed, whether by http.Server or,
// for a hijacked WebSocket, by its handler.
type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { <-c.l.slots })
	return err
}

// CloseWrite half-closes the connection when the underlying one can, as
// http.Server does before closing a connection whose request body it did
// not read, so that the client reads the answer rather than a reset.
func (c *limitConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
