package sim

import (
	"cmp"
	"slices"
)

// statsWindow is how many seconds Stats.PerSecond reaches back.
const statsWindow = 600

// Stats is what a chaos test asserts on.
type Stats struct {
	// Counts are the requests per endpoint, as Counts returns them.
	Counts map[string]int `json:"counts"`
	// Faults are the injected faults by kind (FaultError5xx, ...); every
	// kind is present. The rate limit's 429s are not among them.
	Faults map[string]int `json:"faults"`
	// Violations counts the partner API calls that found the rate-limit
	// bucket empty (see Faults.RateLimit).
	Violations int `json:"violations"`
	// PerSecond counts the partner API calls (token endpoint included) by
	// the second, of Config.Now, they arrived in: the last 600 seconds,
	// oldest first, only seconds with calls. Every call counts, whatever it
	// was answered.
	PerSecond []SecondCount `json:"per_second"`
	// MaxPerSecond is the most partner API calls in one second since the
	// start, including seconds that have left PerSecond.
	MaxPerSecond int `json:"max_per_second"`
	// SessionsCreated counts the auth sessions stored: the successful
	// auth_session answers (not scripted or injected failures).
	SessionsCreated int `json:"sessions_created"`
}

// SecondCount is the number of partner API calls in one second.
type SecondCount struct {
	Second   int64 `json:"second"` // Unix time
	Requests int   `json:"requests"`
}

// Stats returns the counters of the requests, faults and rate limit.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{
		Counts:          s.countsLocked(),
		Faults:          map[string]int{},
		Violations:      s.violations,
		PerSecond:       []SecondCount{},
		MaxPerSecond:    s.maxPerSecond,
		SessionsCreated: s.sessionsCreated,
	}
	for _, k := range s.faults.kinds() {
		st.Faults[k.name] = s.injected[k.name]
	}
	from := s.cfg.Now().Unix() - statsWindow
	for sec, n := range s.perSecond {
		if sec > from {
			st.PerSecond = append(st.PerSecond, SecondCount{Second: sec, Requests: n})
		}
	}
	slices.SortFunc(st.PerSecond, func(a, b SecondCount) int { return cmp.Compare(a.Second, b.Second) })
	return st
}
