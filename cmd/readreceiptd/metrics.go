package main

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics, in a registry of their own
// so that several servers can live in one process (as in tests).
type metrics struct {
	reg *prometheus.Registry

	// calls counts requests by route pattern and API code (0 = success).
	calls *prometheus.CounterVec
	// latency observes request durations by route pattern.
	latency *prometheus.HistogramVec
	// receipts counts receipts newly recorded; its rate is receipts per
	// second.
	receipts prometheus.Counter
	// eventsSent counts events written to WebSocket connections.
	eventsSent prometheus.Counter
	// eventsDropped counts events not delivered because their connection
	// was too slow and has been dropped.
	eventsDropped prometheus.Counter
	// slowClosed counts connections closed for being too slow.
	slowClosed prometheus.Counter
	// conns is the number of open event connections.
	conns prometheus.Gauge
	// refused counts connections refused over -max-conns.
	refused prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "readreceiptd_requests_total",
			Help: "HTTP requests by route and API code (0 is success).",
		}, []string{"endpoint", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "readreceiptd_request_duration_seconds",
			Help:    "HTTP request latency by route.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"endpoint"}),
		receipts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "readreceiptd_receipts_recorded_total",
			Help: "Read receipts newly recorded (rate() gives receipts per second).",
		}),
		eventsSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "readreceiptd_events_sent_total",
			Help: "MESSAGE_READ_RECEIPT_RECEIVED events written to WebSocket connections.",
		}),
		eventsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "readreceiptd_events_dropped_total",
			Help: "Events not delivered because their WebSocket connection was too slow and was dropped.",
		}),
		slowClosed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "readreceiptd_websocket_slow_closed_total",
			Help: "WebSocket connections closed because their send queue was full.",
		}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "readreceiptd_websocket_connections",
			Help: "Open event WebSocket connections.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "readreceiptd_connections_refused_total",
			Help: "Connections answered 503 and closed because -max-conns were open.",
		}),
	}
	m.reg.MustRegister(m.calls, m.latency, m.receipts, m.eventsSent, m.eventsDropped, m.slowClosed, m.conns, m.refused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observe records one request.
func (m *metrics) observe(endpoint string, code int, d time.Duration) {
	m.calls.WithLabelValues(endpoint, strconv.Itoa(code)).Inc()
	m.latency.WithLabelValues(endpoint).Observe(d.Seconds())
}

// handler serves the metrics in the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}
