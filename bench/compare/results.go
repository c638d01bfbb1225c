package compare

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Results are parsed `go test -bench` output: for each benchmark name (without
// its -GOMAXPROCS suffix) and unit, the values of every run.
type Results struct {
	Values map[string]map[string][]float64
	// Header holds the lines of the raw file that start with "# ", which
	// bench/run writes: date, commit, machine.
	Header []string
}

// ParseResults reads benchmark output. Lines that are not results are
// skipped; a result line that does not parse is an error.
func ParseResults(r io.Reader) (*Results, error) {
	res := &Results{Values: map[string]map[string][]float64{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if h, ok := strings.CutPrefix(text, "# "); ok {
			res.Header = append(res.Header, h)
			continue
		}
		if !strings.HasPrefix(text, "Benchmark") {
			continue
		}
		f := strings.Fields(text)
		if len(f) < 4 || len(f)%2 != 0 {
			continue // a benchmark's name alone, as printed before a skip or its log
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			if _, err := strconv.Atoi(name[i+1:]); err == nil {
				name = name[:i]
			}
		}
		units := res.Values[name]
		if units == nil {
			units = map[string][]float64{}
			res.Values[name] = units
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: %q is not a number: %w", line, f[i], err)
			}
			units[f[i+1]] = append(units[f[i+1]], v)
		}
	}
	return res, sc.Err()
}

// Median returns the median of a benchmark's values in unit, and whether
// there were any.
func (r *Results) Median(name, unit string) (float64, bool) {
	vs := slices.Clone(r.Values[name][unit])
	if len(vs) == 0 {
		return 0, false
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2], true
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2, true
}

// find returns the benchmark named prefix + rest for which match(rest) holds,
// preferring the one for which key(rest) is largest.
func (r *Results) find(prefix string, key func(rest string) (int, bool)) (string, bool) {
	best, bestKey, ok := "", math.MinInt, false
	for name := range r.Values {
		rest, found := strings.CutPrefix(name, prefix)
		if !found {
			continue
		}
		if k, match := key(rest); match && (k > bestKey || k == bestKey && name < best) {
			best, bestKey, ok = name, k, true
		}
	}
	return best, ok
}

// Systems are the systems of the report, in order.
var Systems = []string{"engine", "redis", "postgres", "map", "pebblekv"}

// RedisSystems are the systems of the report's second table, all on the one
// Redis server: the engine's Redis backend and the hand-written peer, each
// without a replica and waiting for one ("+wait").
var RedisSystems = []string{"engine-redis", "engine-redis+wait", "redis", "redis+wait"}

// redisPairs are the second table's ratios: the engine's Redis backend
// against the peer in the same setting.
var redisPairs = [][2]string{{"engine-redis", "redis"}, {"engine-redis+wait", "redis+wait"}}

// Row is one line of the report: a workload's metric on every system.
type Row struct {
	ID, Metric string
	// Note says at which size the figure was taken.
	Note string
	// HigherIsBetter decides the ratio: engine/peer when true, peer/engine
	// otherwise, so that a ratio above 1 means the engine does better.
	HigherIsBetter bool
	Values         map[string]float64
}

// Ratio returns how many times better the engine does than peer.
func (r Row) Ratio(peer string) (float64, bool) { return r.RatioOf("engine", peer) }

// RatioOf returns how many times better system a does than b.
func (r Row) RatioOf(a, b string) (float64, bool) {
	e, ok1 := r.Values[a]
	p, ok2 := r.Values[b]
	if !ok1 || !ok2 || e == 0 || p == 0 {
		return 0, false
	}
	if r.HigherIsBetter {
		return e / p, true
	}
	return p / e, true
}

// ParseSize reads a group size as benchmark names write it: 100, 10k, 1M.
func ParseSize(s string) (int, bool) {
	mult := 1
	switch {
	case strings.HasSuffix(s, "M"):
		mult, s = 1_000_000, s[:len(s)-1]
	case strings.HasSuffix(s, "k"):
		mult, s = 1_000, s[:len(s)-1]
	}
	n, err := strconv.Atoi(s)
	return n * mult, err == nil
}

// field returns the value of key=value in a /-separated benchmark name.
func field(name, key string) (string, bool) {
	for _, part := range strings.Split(name, "/") {
		if v, ok := strings.CutPrefix(part, key+"="); ok {
			return v, true
		}
	}
	return "", false
}

// Table returns the report's rows, W1 to W8.
func (r *Results) Table() []Row { return r.table(Systems, false) }

// RedisTable returns the rows of the second table, on RedisSystems: the
// main table's, and what W1 cost the Redis master per receipt, and W4Big's
// memory of one message in a 1M-member group.
func (r *Results) RedisTable() []Row { return r.table(RedisSystems, true) }

func (r *Results) table(systems []string, onRedis bool) []Row {
	var rows []Row
	// add picks, for each system, the benchmark of bench whose name after
	// "sys=<system>/" passes key (largest key first).
	add := func(id, metric, bench, unit string, higher bool, key func(rest string) (int, bool), conv func(float64) float64) {
		row := Row{ID: id, Metric: metric, HigherIsBetter: higher, Values: map[string]float64{}}
		notes := map[string][]string{}
		for _, sys := range systems {
			name, ok := r.find(bench+"/sys="+sys+"/", key)
			if !ok {
				continue
			}
			v, ok := r.Median(name, unit)
			if !ok {
				continue
			}
			if conv != nil {
				v = conv(v)
			}
			row.Values[sys] = v
			rest := strings.TrimPrefix(name, bench+"/sys="+sys+"/")
			rest = strings.TrimSuffix(strings.TrimSuffix(rest, "/filter=read"), "/filter=unread")
			notes[rest] = append(notes[rest], sys)
		}
		if len(row.Values) == 0 {
			return
		}
		var parts []string
		for rest, syss := range notes {
			if len(notes) == 1 {
				parts = append(parts, rest)
			} else {
				parts = append(parts, rest+" ("+strings.Join(syss, ", ")+")")
			}
		}
		slices.Sort(parts)
		row.Note = strings.Join(parts, "; ")
		rows = append(rows, row)
	}
	members := func(want int, suffix string) func(string) (int, bool) {
		return func(rest string) (int, bool) {
			m, _ := field(rest, "members")
			n, ok := ParseSize(m)
			if !ok || !strings.HasSuffix(rest, suffix) || strings.Count(rest, "/") != strings.Count(suffix, "/") {
				return 0, false
			}
			return n, want == 0 || n == want
		}
	}
	anyName := func(string) (int, bool) { return 0, true }
	perReceipt := func(v float64) float64 { return 1e9 / v }

	add("W1", "receipts/s", "BenchmarkW1", "receipts/s", true, members(10_000, ""), nil)
	if onRedis {
		add("W1", "redis-script-us/receipt", "BenchmarkW1", "redis-script-us/receipt", false, members(10_000, ""), nil)
		add("W1", "receipts/s/core", "BenchmarkW1", "receipts/s/core", true, members(10_000, ""), nil)
		add("W1", "redis-cpu-us/receipt", "BenchmarkW1", "redis-cpu-us/receipt", false, members(10_000, ""), nil)
		add("W1", "receipts/s/core-cpu", "BenchmarkW1", "receipts/s/core-cpu", true, members(10_000, ""), nil)
	}
	add("W2", "ns/call", "BenchmarkW2", "ns/op", false, members(10_000, ""), nil)
	add("W3", "ns/page-unread", "BenchmarkW3", "ns/op", false, members(0, "/filter=unread"), nil)
	add("W3", "ns/page-read", "BenchmarkW3", "ns/op", false, members(0, "/filter=read"), nil)
	add("W4", "B/msg-disk", "BenchmarkW4", "B/msg-disk", false, anyName, nil)
	add("W4", "B/msg-mem", "BenchmarkW4", "B/msg-mem", false, anyName, nil)
	if onRedis {
		add("W4Big", "B/msg-spread", "BenchmarkW4Big", "B/msg-spread", false, anyName, nil)
		add("W4Big", "B/msg-front", "BenchmarkW4Big", "B/msg-front", false, anyName, nil)
	}
	add("W5", "ns/track", "BenchmarkW5", "ns/op", false, members(0, ""), nil)
	add("W5", "B/track", "BenchmarkW5", "B/op", false, members(0, ""), nil)
	add("W5", "tracks/s-concurrent", "BenchmarkW5Concurrent", "tracks/s", true, members(0, ""), nil)
	add("W6", "ms/first-answer", "BenchmarkW6", "ms/first-answer", false, anyName, nil)
	add("W7", "p50-us", "BenchmarkW7", "p50-us", false, anyName, nil)
	add("W7", "p99-us", "BenchmarkW7", "p99-us", false, anyName, nil)

	// W8: how each cost grows from the smallest group to the largest.
	for _, g := range []struct {
		metric, bench, suffix, unit string
		conv                        func(float64) float64
	}{
		{"growth-W1", "BenchmarkW1", "", "receipts/s", perReceipt},
		{"growth-W2", "BenchmarkW2", "", "ns/op", nil},
		{"growth-W3-unread", "BenchmarkW3", "/filter=unread", "ns/op", nil},
		{"growth-W3-read", "BenchmarkW3", "/filter=read", "ns/op", nil},
	} {
		row := Row{ID: "W8", Metric: g.metric, Values: map[string]float64{}}
		lo, hi := 0, 0
		for _, sys := range systems {
			pts := r.Series(g.bench, sys, g.suffix, g.unit)
			if len(pts) < 2 {
				continue
			}
			first, last := pts[0], pts[len(pts)-1]
			if g.conv != nil {
				first.Cost, last.Cost = g.conv(first.Cost), g.conv(last.Cost)
			}
			row.Values[sys] = last.Cost / first.Cost
			lo, hi = first.Members, last.Members
		}
		if len(row.Values) > 0 {
			row.Note = "cost at " + sizeLabel(hi) + " / cost at " + sizeLabel(lo) + " members"
			rows = append(rows, row)
		}
	}
	return rows
}

func sizeLabel(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 1_000 && n%1_000 == 0:
		return strconv.Itoa(n/1_000) + "k"
	}
	return strconv.Itoa(n)
}

// Point is one group size's cost.
type Point struct {
	Members int
	Cost    float64
}

// Series returns the medians of bench for sys at each group size, smallest
// first; suffix selects a sub-benchmark such as "/filter=read".
func (r *Results) Series(bench, sys, suffix, unit string) []Point {
	var pts []Point
	prefix := bench + "/sys=" + sys + "/members="
	for name := range r.Values {
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok || !strings.HasSuffix(rest, suffix) {
			continue
		}
		n, ok := ParseSize(strings.TrimSuffix(rest, suffix))
		if !ok {
			continue
		}
		if v, ok := r.Median(name, unit); ok {
			pts = append(pts, Point{n, v})
		}
	}
	slices.SortFunc(pts, func(a, b Point) int { return a.Members - b.Members })
	return pts
}

// FormatNumber prints a figure with three significant digits, or whole
// above 1,000.
func FormatNumber(v float64) string {
	if math.Abs(v) >= 1000 {
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// WriteReport writes the markdown table and then, one per row, the lines
// `W<id> <metric> engine=<n> <peer>=<n> ... ratio_<peer>=<x> ...`.
func (r *Results) WriteReport(w io.Writer) error {
	rows := r.Table()
	var b strings.Builder
	for _, h := range r.Header {
		fmt.Fprintf(&b, "%s  \n", h)
	}
	b.WriteString("\n| workload | metric | " + strings.Join(Systems, " | ") + " | engine vs " + strings.Join(Systems[1:], " | vs ") + " | sizes |\n")
	b.WriteString("|---|---|" + strings.Repeat("---:|", 2*len(Systems)-1) + "---|\n")
	for _, row := range rows {
		fmt.Fprintf(&b, "| %s | %s |", row.ID, row.Metric)
		for _, sys := range Systems {
			if v, ok := row.Values[sys]; ok {
				fmt.Fprintf(&b, " %s |", FormatNumber(v))
			} else {
				b.WriteString(" - |")
			}
		}
		for _, sys := range Systems[1:] {
			if x, ok := row.Ratio(sys); ok {
				fmt.Fprintf(&b, " %sx |", FormatNumber(x))
			} else {
				b.WriteString(" - |")
			}
		}
		fmt.Fprintf(&b, " %s |\n", row.Note)
	}
	b.WriteString("\n")
	for _, row := range rows {
		fmt.Fprintf(&b, "%s %s", row.ID, row.Metric)
		for _, sys := range Systems {
			if v, ok := row.Values[sys]; ok {
				fmt.Fprintf(&b, " %s=%s", sys, FormatNumber(v))
			}
		}
		for _, sys := range Systems[1:] {
			if x, ok := row.Ratio(sys); ok {
				fmt.Fprintf(&b, " ratio_%s=%s", sys, strconv.FormatFloat(x, 'f', 2, 64))
			}
		}
		b.WriteString("\n")
	}
	if rows := r.RedisTable(); len(rows) > 0 {
		writeRedisTable(&b, rows)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeRedisTable writes the second table and its lines for scripts,
// `on-redis W<id> <metric> engine-redis=<n> ... ratio_redis=<x>
// ratio_redis+wait=<x>`, where ratio_<peer> is engine-redis (or
// engine-redis+wait) against that peer, above 1 when the engine does better.
func writeRedisTable(b *strings.Builder, rows []Row) {
	b.WriteString("\nOn Redis: the engine's Redis backend against the hand-written peer, on one server; +wait: every receipt waits for a replica (WAIT 1).\n")
	b.WriteString("In W1, redis-script-us/receipt is INFO commandstats usec of the script calls (FCALL, EVALSHA) per receipt, receipts/s/core = 1e6 / that; redis-cpu-us/receipt is the server's CPU time (INFO cpu) per receipt. W4Big: MEMORY USAGE of one message's keys.\n")
	b.WriteString("\n| workload | metric | " + strings.Join(RedisSystems, " | "))
	for _, p := range redisPairs {
		b.WriteString(" | " + p[0] + " vs " + p[1])
	}
	b.WriteString(" | sizes |\n")
	b.WriteString("|---|---|" + strings.Repeat("---:|", len(RedisSystems)+len(redisPairs)) + "---|\n")
	for _, row := range rows {
		fmt.Fprintf(b, "| %s | %s |", row.ID, row.Metric)
		for _, sys := range RedisSystems {
			if v, ok := row.Values[sys]; ok {
				fmt.Fprintf(b, " %s |", FormatNumber(v))
			} else {
				b.WriteString(" - |")
			}
		}
		for _, p := range redisPairs {
			if x, ok := row.RatioOf(p[0], p[1]); ok {
				fmt.Fprintf(b, " %sx |", FormatNumber(x))
			} else {
				b.WriteString(" - |")
			}
		}
		fmt.Fprintf(b, " %s |\n", row.Note)
	}
	b.WriteString("\n")
	for _, row := range rows {
		fmt.Fprintf(b, "on-redis %s %s", row.ID, row.Metric)
		for _, sys := range RedisSystems {
			if v, ok := row.Values[sys]; ok {
				fmt.Fprintf(b, " %s=%s", sys, FormatNumber(v))
			}
		}
		for _, p := range redisPairs {
			if x, ok := row.RatioOf(p[0], p[1]); ok {
				fmt.Fprintf(b, " ratio_%s=%s", p[1], strconv.FormatFloat(x, 'f', 2, 64))
			}
		}
		b.WriteString("\n")
	}
}
