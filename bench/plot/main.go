// Command plot draws workload W8 from the output of the comparison
// benchmarks: the cost of each operation against the group size, one line
// per system, both axes logarithmic, one panel per operation (a receipt in
// W1, a 30-message count in W2, an unread and a read page in W3). Usage:
//
//	go run ./bench/plot [-o w8.png] FILE
package main

import (
	"flag"
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/readreceipt/readreceipt/bench/compare"
)

func main() {
	out := flag.String("o", "w8.png", "the PNG to write")
	flag.Parse()
	if err := run(flag.Args(), *out); err != nil {
		fmt.Fprintln(os.Stderr, "plot:", err)
		os.Exit(1)
	}
}

var colors = map[string]color.Color{
	"engine":   color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	"redis":    color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	"postgres": color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	"map":      color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
	"pebblekv": color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
}

type panel struct {
	title, bench, suffix, unit string
	perReceipt                 bool
}

var panels = []panel{
	{"W1: receipt, 30 per call, 64 callers (ns per receipt)", "BenchmarkW1", "", "receipts/s", true},
	{"W2: counts of 30 messages (ns per call)", "BenchmarkW2", "", "ns/op", false},
	{"W3: page of 100 unread members (ns per page)", "BenchmarkW3", "/filter=unread", "ns/op", false},
	{"W3: page of 100 read members (ns per page)", "BenchmarkW3", "/filter=read", "ns/op", false},
}

func run(args []string, out string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: plot [-o w8.png] FILE")
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	res, err := compare.ParseResults(f)
	f.Close()
	if err != nil {
		return err
	}
	var flat []*plot.Plot
	for _, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.title
		p.X.Label.Text = "group members"
		p.Y.Label.Text = "ns"
		p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
		p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
		p.Legend.Top, p.Legend.Left = true, true
		p.Add(plotter.NewGrid())
		drawn := 0
		for _, sys := range compare.Systems {
			pts := res.Series(pn.bench, sys, pn.suffix, pn.unit)
			if len(pts) == 0 {
				continue
			}
			xys := make(plotter.XYs, len(pts))
			for j, pt := range pts {
				y := pt.Cost
				if pn.perReceipt {
					y = 1e9 / y
				}
				xys[j] = plotter.XY{X: float64(pt.Members), Y: y}
			}
			l, s, err := plotter.NewLinePoints(xys)
			if err != nil {
				return err
			}
			l.Color, s.Color = colors[sys], colors[sys]
			l.Width = vg.Points(1.5)
			if sys == "engine" {
				l.Width = vg.Points(2.5)
			}
			p.Add(l, s)
			p.Legend.Add(sys, l, s)
			drawn++
		}
		if drawn > 0 { // a panel without data cannot have log scales
			flat = append(flat, p)
		}
	}
	if len(flat) == 0 {
		return fmt.Errorf("no W1-W3 results in %s", args[0])
	}
	cols := min(2, len(flat))
	rows := (len(flat) + cols - 1) / cols
	plots := make([][]*plot.Plot, rows)
	for i, p := range flat {
		plots[i/cols] = append(plots[i/cols], p)
	}
	if len(plots[rows-1]) < cols {
		plots[rows-1] = append(plots[rows-1], nil) // an empty tile
	}
	img := vgimg.New(vg.Points(float64(550*cols)), vg.Points(float64(425*rows)))
	dc := draw.New(img)
	canvases := plot.Align(plots, draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(12), PadY: vg.Points(12),
		PadTop: vg.Points(8), PadBottom: vg.Points(8), PadLeft: vg.Points(8), PadRight: vg.Points(8)}, dc)
	for i := range plots {
		for j := range plots[i] {
			if plots[i][j] != nil {
				plots[i][j].Draw(canvases[i][j])
			}
		}
	}
	w, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}
