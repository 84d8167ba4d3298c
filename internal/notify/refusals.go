package notify

import (
	"strings"
	"sync"
	"time"
)

// Defaults for EmailConfig.BrokenAfter and BrokenWindow.
const (
	// BrokenAfterDefault is how many distinct addresses refused within the
	// window make the email channel count as broken.
	BrokenAfterDefault = 10
	// BrokenWindowDefault is that window.
	BrokenWindowDefault = 10 * time.Minute
)

// EmailHealth is what the answers to RCPT TO within the last Window say of
// the email channel. It counts as Broken when at least BrokenAfter distinct
// addresses were refused (a 5xx of any class) and refusals were at least
// half of the answers (refused + accepted): a relay refusing everyone (an
// IP allow-list, wrong credentials, "554 5.7.1 Relay access denied", or
// even "550 5.1.1" for every address) is broken, a healthy relay refusing
// a few bad addresses of many is not. While it is broken no refusal
// suppresses an address; it is over once accepted messages outnumber the
// refusals again, or the refusals age out of the window.
//
// It is per process: each process judges from its own sends.
type EmailHealth struct {
	Broken bool
	// Since is when it began counting as broken (zero while it does not).
	Since  time.Time
	Window time.Duration
	// Addresses is the distinct addresses refused within Window; Refused
	// and Accepted the refusals and accepted messages.
	Addresses, Refused, Accepted int
	// LastReason is the latest refusal's reply, e.g. "554 5.7.1 Relay
	// access denied", at LastAt.
	LastReason string
	LastAt     time.Time
}

// watchBuckets is how many slices of the window the counts are kept in.
const watchBuckets = 10

// maxWatched bounds the distinct addresses a refusalWatch remembers; more
// than the threshold needs only ever confirms what it says.
const maxWatched = 4096

// refusalWatch keeps EmailHealth's counts.
type refusalWatch struct {
	after  int
	window time.Duration
	now    func() time.Time

	mu         sync.Mutex
	buckets    [watchBuckets]watchBucket
	addrs      map[string]time.Time // lower-case address → its latest refusal
	since      time.Time
	lastReason string
	lastAt     time.Time
}

type watchBucket struct {
	slot              int64 // which slice of time it counts
	accepted, refused int
}

func newRefusalWatch(after int, window time.Duration, now func() time.Time) *refusalWatch {
	if after <= 0 {
		after = BrokenAfterDefault
	}
	if window <= 0 {
		window = BrokenWindowDefault
	}
	window = max(window, watchBuckets*time.Millisecond) // a slice of at least 1 ms
	return &refusalWatch{after: after, window: window, now: now, addrs: map[string]time.Time{}}
}

// bucket returns the bucket of t, emptied when it last counted an older
// slice.
func (w *refusalWatch) bucket(t time.Time) *watchBucket {
	slot := t.UnixNano() / int64(w.window/watchBuckets)
	b := &w.buckets[slot%watchBuckets]
	if b.slot != slot {
		*b = watchBucket{slot: slot}
	}
	return b
}

// accepted counts a message the server took.
func (w *refusalWatch) accepted() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.bucket(w.now()).accepted++
	w.judge(w.now())
}

// refused counts a 5xx to RCPT TO for addr and returns the health after
// it, and whether this refusal made the channel count as broken.
func (w *refusalWatch) refused(addr, reason string) (EmailHealth, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	w.bucket(now).refused++
	key := strings.ToLower(addr)
	if _, ok := w.addrs[key]; ok || len(w.addrs) < maxWatched {
		w.addrs[key] = now
	}
	w.lastReason, w.lastAt = reason, now
	wasBroken := !w.since.IsZero()
	h := w.judge(now)
	return h, h.Broken && !wasBroken
}

// health is the current EmailHealth.
func (w *refusalWatch) health() EmailHealth {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.judge(w.now())
}

// judge counts the window ending at now, forgets what is older, and says
// whether the channel counts as broken. The caller holds mu.
func (w *refusalWatch) judge(now time.Time) EmailHealth {
	h := EmailHealth{Window: w.window, LastReason: w.lastReason, LastAt: w.lastAt}
	first := now.UnixNano()/int64(w.window/watchBuckets) - watchBuckets + 1
	for _, b := range w.buckets {
		if b.slot >= first {
			h.Accepted += b.accepted
			h.Refused += b.refused
		}
	}
	cutoff := now.Add(-w.window)
	for a, at := range w.addrs {
		if !at.After(cutoff) {
			delete(w.addrs, a)
			continue
		}
		h.Addresses++
	}
	h.Broken = h.Addresses >= w.after && h.Refused >= h.Accepted
	switch {
	case !h.Broken:
		w.since = time.Time{}
	case w.since.IsZero():
		w.since = now
	}
	h.Since = w.since
	return h
}
