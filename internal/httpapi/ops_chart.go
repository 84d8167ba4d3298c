package httpapi

import (
	"fmt"
	"math"

	"github.com/reauth/reauth/internal/ops"
)

// The overview's chart of the funnel by day: grouped bars, one group a
// day, one bar a step, drawn as SVG by the template (chart.html) from the
// geometry computed here. No script: the bars' <title>s are the tooltips.

// OpsChartDays is how many days (UTC, today last) the funnel chart covers.
const OpsChartDays = 7

// chartSeries are the funnel's steps as the chart draws them.
var chartSeries = []struct {
	Key, Name, Color string
	Count            func(ops.FunnelDay) int64
}{
	{"requested", "requested", "#6b7280", func(d ops.FunnelDay) int64 { return d.Requested }},
	{"link_created", "link created", "#2563eb", func(d ops.FunnelDay) int64 { return d.LinkCreated }},
	{"sent", "sent", "#7c3aed", func(d ops.FunnelDay) int64 { return d.Sent }},
	{"opened", "opened", "#d97706", func(d ops.FunnelDay) int64 { return d.Opened }},
	{"completed", "completed", "#15803d", func(d ops.FunnelDay) int64 { return d.Completed }},
}

// funnelChart is the chart's geometry, in SVG user units.
type funnelChart struct {
	Width, Height            int
	Left, Right, Top, Bottom float64 // the plot area
	YTicks                   []chartTick
	Days                     []chartDay
	Legend                   []chartLegend
	Total                    int64 // every count together; 0: an empty chart
}

type chartTick struct {
	Y     float64
	Label string
}

type chartDay struct {
	Date   string // 2006-01-02
	Label  string // "Mon 02"
	X      float64
	Bars   []chartBar
	Counts string // the day's counts, for the group's title
}

type chartBar struct {
	Series, Color, Title string
	Count                int64
	X, Y, W, H           float64
}

type chartLegend struct {
	X           float64
	Name, Color string
	Series      string
}

// round1 rounds to a tenth, for short SVG attributes.
func round1(x float64) float64 { return math.Round(x*10) / 10 }

// niceStep is a step of 1, 2 or 5 times a power of ten that cuts max into
// at most about four intervals.
func niceStep(max int64) int64 {
	if max <= 4 {
		return 1
	}
	raw := float64(max) / 4
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw {
			return int64(m * p)
		}
	}
	return int64(10 * p)
}

// newFunnelChart lays the days out.
func newFunnelChart(days []ops.FunnelDay) funnelChart {
	c := funnelChart{Width: 760, Height: 280, Left: 48, Right: 748, Top: 36, Bottom: 240}
	var max int64
	for _, d := range days {
		for _, s := range chartSeries {
			n := s.Count(d)
			max = int64(math.Max(float64(max), float64(n)))
			c.Total += n
		}
	}
	step := niceStep(max)
	top := step * int64(math.Ceil(float64(max)/float64(step)))
	if top == 0 {
		top = step
	}
	y := func(n int64) float64 { return c.Bottom - (c.Bottom-c.Top)*float64(n)/float64(top) }
	for v := int64(0); v <= top; v += step {
		c.YTicks = append(c.YTicks, chartTick{Y: round1(y(v)), Label: fmt.Sprint(v)})
	}
	group := (c.Right - c.Left) / float64(max1(len(days)))
	barW := group * 0.8 / float64(len(chartSeries))
	for i, d := range days {
		cd := chartDay{Date: d.Day.Format("2006-01-02"), Label: d.Day.Format("Mon 02"), X: round1(c.Left + group*(float64(i)+0.5))}
		cd.Counts = fmt.Sprintf("%s: requested %d, link created %d, sent %d, opened %d, completed %d",
			cd.Date, d.Requested, d.LinkCreated, d.Sent, d.Opened, d.Completed)
		for j, s := range chartSeries {
			n := s.Count(d)
			if n == 0 {
				continue
			}
			x := c.Left + group*float64(i) + group*0.1 + barW*float64(j)
			cd.Bars = append(cd.Bars, chartBar{Series: s.Key, Color: s.Color, Count: n,
				Title: fmt.Sprintf("%s, %s: %d", cd.Date, s.Name, n),
				X:     round1(x), Y: round1(y(n)), W: round1(barW - 1), H: round1(c.Bottom - y(n))})
		}
		c.Days = append(c.Days, cd)
	}
	for j, s := range chartSeries {
		c.Legend = append(c.Legend, chartLegend{X: c.Left + float64(j)*120, Name: s.Name, Color: s.Color, Series: s.Key})
	}
	return c
}

func max1(n int) int {
	if n < 1 {
		return 1
	}
	return n
}
