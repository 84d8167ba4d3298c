package ops

import (
	"context"
	"fmt"
	"time"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/podero"
	"github.com/reauth/reauth/internal/store"
)

// Stats is the state of the service at a glance: `reauth stats` and the
// ops page's overview.
type Stats struct {
	Window string            `json:"window"`
	Since  time.Time         `json:"since"`
	Queues []Queue           `json:"queues"`
	Funnel []store.FunnelRow `json:"funnel"` // per org and device kind
	Total  store.FunnelRow   `json:"total"`  // org "total", kind "all"
	// ByKind is the funnel per device kind, every kind in the order of
	// reauth.DeviceKinds, whatever the org.
	ByKind []store.FunnelRow `json:"-"`
	Budget Budget            `json:"budget"`
	Sync   Sync              `json:"sync"`
}

// Stats reads the queues, the funnel over the window back from now, the
// budget and the sync status.
func (o *Ops) Stats(ctx context.Context, window time.Duration) (Stats, error) {
	if window <= 0 {
		return Stats{}, fmt.Errorf("the window must be positive, not %s", window)
	}
	s := Stats{Window: window.String(), Since: o.now().Add(-window).UTC()}
	var err error
	if s.Queues, err = o.Queues(ctx); err != nil {
		return Stats{}, err
	}
	rows, err := store.Funnel(ctx, o.Pool, s.Since, false)
	if err != nil {
		return Stats{}, fmt.Errorf("funnel: %w", err)
	}
	s.Funnel = append([]store.FunnelRow{}, rows...)
	s.Total = store.FunnelRow{OrgID: "total", DeviceKind: "all"}
	byKind := map[string]*store.FunnelCounts{}
	for _, k := range reauth.DeviceKinds {
		s.ByKind = append(s.ByKind, store.FunnelRow{DeviceKind: string(k)})
	}
	for i := range s.ByKind {
		byKind[s.ByKind[i].DeviceKind] = &s.ByKind[i].FunnelCounts
	}
	for _, r := range rows {
		s.Total.Add(r.FunnelCounts)
		if c, ok := byKind[r.DeviceKind]; ok {
			c.Add(r.FunnelCounts)
		}
	}
	if s.Budget, err = o.Budget(ctx); err != nil {
		return Stats{}, err
	}
	if s.Sync, err = o.Sync(ctx); err != nil {
		return Stats{}, err
	}
	return s, nil
}

// FunnelDay is the funnel of the requests and sessions created on one UTC
// day.
type FunnelDay struct {
	Day time.Time
	store.FunnelCounts
}

// FunnelDays returns the funnel of each of the last n UTC days, today
// last; a day without requests or sessions has zero counts.
func (o *Ops) FunnelDays(ctx context.Context, n int) ([]FunnelDay, error) {
	today := o.now().UTC().Truncate(24 * time.Hour)
	first := today.AddDate(0, 0, 1-n)
	rows, err := store.Funnel(ctx, o.Pool, first, true)
	if err != nil {
		return nil, fmt.Errorf("funnel by day: %w", err)
	}
	days := make([]FunnelDay, n)
	for i := range days {
		days[i].Day = first.AddDate(0, 0, i)
	}
	for _, r := range rows {
		if r.Day == nil {
			continue
		}
		if i := int(r.Day.UTC().Sub(first) / (24 * time.Hour)); i >= 0 && i < n {
			days[i].Add(r.FunnelCounts)
		}
	}
	return days, nil
}

// Budget is how Podero's rate limit is being spent, every process together.
type Budget struct {
	store.Budget
	RateLimit float64 `json:"rate_limit"` // PODERO_RATE_LIMIT; 0: none
	// DrainSeconds is how long the waiting requests take at the rate they
	// get; null when they get none.
	DrainSeconds *float64 `json:"drain_seconds"`
	// Purposes are the rates of the purposes with calls, in the order of
	// podero.Purposes; Total is their sum.
	Purposes []PurposeRate `json:"-"`
	Total    float64       `json:"-"`
}

// PurposeRate is the calls a second of one purpose.
type PurposeRate struct {
	Purpose string
	Rate    float64
}

// Budget reads the budget.
func (o *Ops) Budget(ctx context.Context) (Budget, error) {
	b, err := store.GetBudget(ctx, o.Pool)
	if err != nil {
		return Budget{}, fmt.Errorf("budget: %w", err)
	}
	out := Budget{Budget: b, RateLimit: o.RateLimit}
	if d, ok := b.DrainTime(); ok {
		secs := d.Seconds()
		out.DrainSeconds = &secs
	}
	for _, p := range podero.Purposes {
		if r, ok := b.Rates[p]; ok {
			out.Purposes = append(out.Purposes, PurposeRate{p, r})
			out.Total += r
		}
	}
	return out, nil
}

// LimitText says the rate limit for people.
func (b Budget) LimitText() string {
	if b.RateLimit > 0 {
		return fmt.Sprintf("of %.4g (PODERO_RATE_LIMIT)", b.RateLimit)
	}
	return "no limit"
}

// Sync is the device sync's status.
type Sync struct {
	store.SyncStatus
	LagSeconds float64 `json:"lag_s"`
	// PassSeconds is a full pass at SYNC_RATE_SHARE × PODERO_RATE_LIMIT
	// (null: no limit), CurrentPassSeconds at the sync's calls a second
	// over the last 10 minutes (null: none).
	PassSeconds        *float64      `json:"pass_s"`
	CallsPerSecond     float64       `json:"calls_per_second"`
	CurrentPassSeconds *float64      `json:"current_pass_s"`
	Interval           string        `json:"interval"` // SYNC_INTERVAL
	interval           time.Duration // the same
}

// Sync reads the device sync's status.
func (o *Ops) Sync(ctx context.Context) (Sync, error) {
	s, err := store.GetSyncStatus(ctx, o.Pool, nil, o.SyncInterval)
	if err != nil {
		return Sync{}, fmt.Errorf("sync status: %w", err)
	}
	rate := o.RateLimit * o.SyncShare
	out := Sync{SyncStatus: s, LagSeconds: s.Lag.Seconds(), CallsPerSecond: s.CallsPerSecond(),
		Interval: o.SyncInterval.String(), interval: o.SyncInterval}
	if d, ok := s.PassTime(rate); ok && rate > 0 {
		secs := d.Seconds()
		out.PassSeconds = &secs
	}
	if d, ok := s.PassTime(s.CallsPerSecond()); ok {
		secs := d.Seconds()
		out.CurrentPassSeconds = &secs
	}
	return out, nil
}

// secondsText is secs as a duration rounded to the second.
func secondsText(secs float64) string {
	return (time.Duration(secs * float64(time.Second))).Round(time.Second).String()
}

// LagText says the sync lag: "-" when nothing was listed.
func (s Sync) LagText() string {
	if s.OldestSync.IsZero() {
		return "-"
	}
	return fmt.Sprintf("%s (oldest sync %s)", s.Lag.Round(time.Second), FormatTime(s.OldestSync))
}

// PassText says how long a full pass takes at the sync's share of the rate.
func (s Sync) PassText() string {
	if s.PassSeconds == nil {
		return "no limit"
	}
	t := secondsText(*s.PassSeconds) + " at SYNC_RATE_SHARE of PODERO_RATE_LIMIT"
	if s.interval > 0 && *s.PassSeconds > s.interval.Seconds() {
		t += " (longer than SYNC_INTERVAL)"
	}
	return t
}

// CurrentText says how long a full pass takes at the sync's current rate.
func (s Sync) CurrentText() string {
	if s.CurrentPassSeconds == nil || s.CallsPerSecond <= 0 {
		return "no sync calls in the last 10 minutes"
	}
	return fmt.Sprintf("%s at the current %.2f calls/s", secondsText(*s.CurrentPassSeconds), s.CallsPerSecond)
}
