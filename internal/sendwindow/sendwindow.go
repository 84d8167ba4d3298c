// Package sendwindow holds quiet hours: the daily span of local time in
// which messages go out (SEND_WINDOW), and the user's time zone they are
// reckoned in (a contact's IANA timezone, else one derived from the Podero
// user's country, else DEFAULT_TIMEZONE).
//
// The zone database is embedded (time/tzdata), so zones load on minimal
// images without /usr/share/zoneinfo.
package sendwindow

import (
	"errors"
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // zones work without the system's zoneinfo
)

// Defaults of SEND_WINDOW, DEFAULT_TIMEZONE and SEND_WINDOW_INTERACTIVE.
const (
	// WindowDefault keeps messages to waking, non-intrusive hours.
	WindowDefault = "08:00-20:00"
	// TimezoneDefault is the zone of a user with neither a contact
	// timezone nor a known country. Podero and its partners are Central
	// European: most users without a zone live in CET/CEST, where UTC
	// would be an hour or two early (a 20:00 end would be 22:00 in summer).
	TimezoneDefault = "Europe/Vienna"
	// InteractiveDefault: the first message answering an interactive
	// request goes at once, whatever the hour (see Interactive).
	InteractiveDefault = InteractiveSkip
)

// What the first message answering an interactive request does with the
// window (SEND_WINDOW_INTERACTIVE).
const (
	// InteractiveSkip: it goes at once; a person (the user in the
	// partner's app, a care agent on the phone) is waiting for the link.
	InteractiveSkip = "skip"
	// InteractiveRespect: it waits for the window like any other message.
	InteractiveRespect = "respect"
)

// Window is a daily span of local time, from its start (inclusive) to its
// end (exclusive); an end before the start crosses midnight (22:00-06:00).
// The zero Window is always open: messages go at any hour.
type Window struct {
	start, end int // minutes after midnight; equal: always open
}

// Always is the window that is always open (SEND_WINDOW=off).
var Always = Window{}

// Parse reads "HH:MM-HH:MM" (24-hour clock, the end may be 24:00); "off"
// and "00:00-24:00" are Always. A window whose start equals its end would
// never open, and is an error.
func Parse(s string) (Window, error) {
	s = strings.TrimSpace(s)
	if s == "off" {
		return Always, nil
	}
	from, to, ok := strings.Cut(s, "-")
	if !ok {
		return Window{}, errors.New(`want HH:MM-HH:MM, like 08:00-20:00, or off`)
	}
	start, err := clock(strings.TrimSpace(from), false)
	if err != nil {
		return Window{}, err
	}
	end, err := clock(strings.TrimSpace(to), true)
	if err != nil {
		return Window{}, err
	}
	if start == 0 && end == 24*60 {
		return Always, nil
	}
	if end == 24*60 {
		end = 0
	}
	if start == end {
		return Window{}, errors.New("the window's start and end must differ (off: any hour)")
	}
	return Window{start: start, end: end}, nil
}

// MustParse is Parse for constants; it panics on an error.
func MustParse(s string) Window {
	w, err := Parse(s)
	if err != nil {
		panic(fmt.Sprintf("sendwindow: %q: %v", s, err))
	}
	return w
}

// clock reads HH:MM as minutes after midnight; 24:00 only as an end.
func clock(s string, end bool) (int, error) {
	digit := func(i int) int { return int(s[i] - '0') }
	if len(s) != 5 || s[2] != ':' || strings.ContainsFunc(s[:2]+s[3:], func(r rune) bool { return r < '0' || r > '9' }) {
		return 0, fmt.Errorf("%q: want HH:MM", s)
	}
	h, m := digit(0)*10+digit(1), digit(3)*10+digit(4)
	if end && h == 24 && m == 0 {
		return 24 * 60, nil
	}
	if h > 23 || m > 59 {
		return 0, fmt.Errorf("%q: not a time of day", s)
	}
	return h*60 + m, nil
}

// IsAlways reports whether w is open at every hour.
func (w Window) IsAlways() bool { return w.start == w.end }

// String writes w as Parse reads it.
func (w Window) String() string {
	if w.IsAlways() {
		return "off"
	}
	end := w.end
	if end == 0 {
		end = 24 * 60
	}
	return fmt.Sprintf("%02d:%02d-%02d:%02d", w.start/60, w.start%60, end/60, end%60)
}

// Contains reports whether t falls inside w in loc's local time.
func (w Window) Contains(t time.Time, loc *time.Location) bool {
	if w.IsAlways() {
		return true
	}
	l := t.In(loc)
	m := l.Hour()*60 + l.Minute()
	if w.start < w.end {
		return w.start <= m && m < w.end
	}
	return m >= w.start || m < w.end // crosses midnight
}

// Next is the earliest time at or after t inside w in loc: t itself when it
// is inside, else the window's next start. A start that falls into a
// daylight-saving gap (02:30 on the spring-forward day) is the wall time
// the clock shows after the jump (03:30).
func (w Window) Next(t time.Time, loc *time.Location) time.Time {
	if w.Contains(t, loc) {
		return t
	}
	l := t.In(loc)
	for day := 0; day <= 2; day++ {
		s := time.Date(l.Year(), l.Month(), l.Day()+day, w.start/60, w.start%60, 0, 0, loc)
		if s.After(t) {
			return s
		}
	}
	return t // unreachable: a start lies within the next two days
}
