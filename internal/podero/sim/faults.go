package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Fault kinds, the keys of Stats.Faults, in the order a draw walks them.
const (
	FaultError5xx      = "error_5xx"
	FaultRateLimited   = "rate_limited"
	FaultHang          = "hang"
	FaultReset         = "reset"
	FaultMalformedJSON = "malformed_json"
	FaultNullFields    = "null_fields"
	FaultForeignHost   = "foreign_host"
	FaultRevokeTokens  = "revoke_tokens"
)

// Faults are failures injected at random into partner API calls (the token
// endpoints and everything under /api/; never the connect pages nor the
// admin API), and the simulator's own rate limit.
//
// The probabilities are per call, each 0..1, together at most 1. Each call
// draws one number u in [0,1) from the server's generator (seeded with
// Config.FaultSeed) and walks the probabilities in the order of the fields
// below, error_5xx to revoke_tokens: the first kind whose cumulative
// probability exceeds u is the call's fault, unless that kind does not apply
// to the endpoint, in which case the call has none. So a call gets at most
// one fault, and each kind's probability is exactly its field on the
// endpoints it applies to. No number is drawn when every probability is 0,
// nor for an auth_session call whose device has a scripted answer queued
// (see Script): scripts win over faults.
//
// In JSON the durations are Go duration strings ("1.5s"); numbers of
// seconds are read too. Unknown fields are an error.
type Faults struct {
	// Error5xx answers 500, 502 and 503 in turn, with a small JSON body
	// and no Retry-After.
	Error5xx float64 `json:"error_5xx"`
	// RateLimited answers 429 with a Retry-After of RetryAfter, in turn as
	// seconds (rounded up) and as an HTTP date, the seconds form first.
	RateLimited float64 `json:"rate_limited"`
	// Hang waits HangFor (or until the client goes away), then answers
	// normally.
	Hang float64 `json:"hang"`
	// Reset closes the connection with a TCP reset instead of answering.
	Reset float64 `json:"reset"`
	// MalformedJSON answers 200 with a truncated JSON body.
	MalformedJSON float64 `json:"malformed_json"`
	// NullFields, on auth_session only, answers 200 with
	// authentication_url null, then session_id null, then both, in turn.
	// No session is stored.
	NullFields float64 `json:"null_fields"`
	// ForeignHost, on auth_session only, answers 200 with an
	// authentication_url on https://evil.example. No session is stored.
	ForeignHost float64 `json:"foreign_host"`
	// RevokeTokens revokes every access token issued so far and then
	// handles the call normally: calls with older tokens get 401, new
	// tokens work.
	RevokeTokens float64 `json:"revoke_tokens"`

	// RetryAfter is the Retry-After of RateLimited (default 1s).
	RetryAfter time.Duration `json:"retry_after"`
	// HangFor is how long Hang waits (default 30s).
	HangFor time.Duration `json:"hang_for"`

	// RateLimit, when above 0, is the simulator's own limit in requests per
	// second over all partner API calls together (token endpoint included):
	// a token bucket holding RateBurst tokens (default RateLimit rounded up,
	// at least 1), refilled at RateLimit per second. A call that finds it
	// empty gets 429 with Retry-After: 1 and counts as a violation, not as
	// an injected fault.
	RateLimit float64 `json:"rate_limit"`
	RateBurst int     `json:"rate_burst"`
}

// weighted is a fault kind and its probability.
type weighted struct {
	name string
	p    float64
}

// kinds lists the fault kinds with their probabilities, in draw order.
func (f Faults) kinds() []weighted {
	return []weighted{
		{FaultError5xx, f.Error5xx},
		{FaultRateLimited, f.RateLimited},
		{FaultHang, f.Hang},
		{FaultReset, f.Reset},
		{FaultMalformedJSON, f.MalformedJSON},
		{FaultNullFields, f.NullFields},
		{FaultForeignHost, f.ForeignHost},
		{FaultRevokeTokens, f.RevokeTokens},
	}
}

// applies reports whether fault kind can hit endpoint.
func applies(fault, endpoint string) bool {
	if fault == FaultNullFields || fault == FaultForeignHost {
		return endpoint == EndpointAuthSession
	}
	return true
}

// Validate reports the first invalid value: a probability outside 0..1,
// probabilities summing above 1, a negative duration, rate or burst.
func (f Faults) Validate() error {
	sum := 0.0
	for _, k := range f.kinds() {
		if !(k.p >= 0 && k.p <= 1) {
			return fmt.Errorf("%s: probability %v is not between 0 and 1", k.name, k.p)
		}
		sum += k.p
	}
	switch {
	case sum > 1+1e-9:
		return fmt.Errorf("the probabilities sum to %v, above 1", sum)
	case f.RetryAfter < 0:
		return errors.New("retry_after must not be negative")
	case f.HangFor < 0:
		return errors.New("hang_for must not be negative")
	case !(f.RateLimit >= 0) || math.IsInf(f.RateLimit, 1):
		return fmt.Errorf("rate_limit: %v is not a number of requests per second", f.RateLimit)
	case f.RateBurst < 0:
		return errors.New("rate_burst must not be negative")
	}
	return nil
}

// withDefaults fills the zero durations and burst.
func (f Faults) withDefaults() Faults {
	if f.RetryAfter == 0 {
		f.RetryAfter = time.Second
	}
	if f.HangFor == 0 {
		f.HangFor = 30 * time.Second
	}
	if f.RateBurst == 0 && f.RateLimit > 0 {
		f.RateBurst = int(math.Min(math.Max(1, math.Ceil(f.RateLimit)), 1<<30))
	}
	return f
}

// MarshalJSON writes the durations as Go duration strings.
func (f Faults) MarshalJSON() ([]byte, error) {
	type plain Faults // without the methods
	return json.Marshal(struct {
		plain
		RetryAfter string `json:"retry_after"` // shadow the time.Durations
		HangFor    string `json:"hang_for"`
	}{plain(f), f.RetryAfter.String(), f.HangFor.String()})
}

// UnmarshalJSON reads durations as Go duration strings or numbers of
// seconds, and rejects unknown fields.
func (f *Faults) UnmarshalJSON(b []byte) error {
	type plain Faults
	var v struct {
		plain
		RetryAfter duration `json:"retry_after"`
		HangFor    duration `json:"hang_for"`
	}
	v.plain, v.RetryAfter, v.HangFor = plain(*f), duration(f.RetryAfter), duration(f.HangFor)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		return err
	}
	*f = Faults(v.plain)
	f.RetryAfter, f.HangFor = time.Duration(v.RetryAfter), time.Duration(v.HangFor)
	return nil
}

// duration is a time.Duration read from JSON as "250ms" or as seconds.
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		*d = duration(v)
		return err
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil || math.Abs(secs) > math.MaxInt64/float64(time.Second) {
		return fmt.Errorf("want a duration like \"1.5s\" or a number of seconds, got %s", b)
	}
	*d = duration(secs * float64(time.Second))
	return nil
}

// SetFaults replaces the faults in effect (zero durations and burst take
// their defaults) and refills the rate-limit bucket. It panics on faults
// that Validate rejects: a broken test.
func (s *Server) SetFaults(f Faults) {
	if err := f.Validate(); err != nil {
		panic("sim: SetFaults: " + err.Error())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setFaults(f)
}

// setFaults is SetFaults without the checks; the caller holds s.mu (or
// is New).
func (s *Server) setFaults(f Faults) {
	s.faults = f.withDefaults()
	s.bucket = float64(s.faults.RateBurst)
	s.bucketAt = s.cfg.Now()
}

// Faults returns the faults in effect, defaults filled in.
func (s *Server) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults
}

// decision is what a partner API call met when it arrived.
type decision struct {
	limited bool   // it found the rate-limit bucket empty
	fault   string // its injected fault, "" for none
	n       int    // the faults of that kind so far, this one included
	f       Faults // the faults in effect
}

// arrive accounts for a partner API call to endpoint name: it counts it,
// takes a token from the rate-limit bucket and draws its fault. A
// revoke_tokens fault takes effect here.
func (s *Server) arrive(name string, r *http.Request) decision {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	s.counts[name]++
	sec := now.Unix()
	s.perSecond[sec]++
	s.maxPerSecond = max(s.maxPerSecond, s.perSecond[sec])
	if len(s.perSecond) > statsWindow {
		for k := range s.perSecond {
			if k <= sec-statsWindow {
				delete(s.perSecond, k)
			}
		}
	}

	d := decision{f: s.faults}
	if d.f.RateLimit > 0 && !s.takeToken(now) {
		s.violations++
		d.limited = true
		return d
	}
	if name == EndpointAuthSession && len(s.scripts[normUUID(r.PathValue("device_id"))]) > 0 {
		return d // the script answers
	}
	d.fault = s.draw(name)
	if d.fault != "" {
		s.injected[d.fault]++
		d.n = s.injected[d.fault]
	}
	if d.fault == FaultRevokeTokens {
		clear(s.tokens)
	}
	return d
}

// takeToken refills the bucket for the time since it was last refilled and
// takes a token from it, if there is one; the caller holds s.mu.
func (s *Server) takeToken(now time.Time) bool {
	if elapsed := now.Sub(s.bucketAt); elapsed > 0 {
		s.bucket = math.Min(float64(s.faults.RateBurst), s.bucket+elapsed.Seconds()*s.faults.RateLimit)
		s.bucketAt = now
	}
	if s.bucket < 1 {
		return false
	}
	s.bucket--
	return true
}

// draw picks the fault of a call to endpoint, "" for none, as Faults
// describes; the caller holds s.mu.
func (s *Server) draw(endpoint string) string {
	kinds := s.faults.kinds()
	total := 0.0
	for _, k := range kinds {
		total += k.p
	}
	if total == 0 {
		return ""
	}
	u, cum := s.rng.Float64(), 0.0
	for _, k := range kinds {
		cum += k.p
		if u < cum {
			if !applies(k.name, endpoint) {
				return ""
			}
			return k.name
		}
	}
	return ""
}

// inject answers a call to endpoint with its fault, when the fault replaces
// the answer. It reports whether the call is done with (answered, reset or
// abandoned by its client); if not, the endpoint answers it.
func (s *Server) inject(w http.ResponseWriter, r *http.Request, endpoint string, d decision) bool {
	switch d.fault {
	case FaultError5xx:
		status := [...]int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable}[(d.n-1)%3]
		writeJSON(w, status, detail{http.StatusText(status)})
	case FaultRateLimited:
		// Rounded up to whole seconds, in both forms.
		wait := d.f.RetryAfter + time.Second - 1
		retryAfter := strconv.FormatInt(int64(wait/time.Second), 10)
		if d.n%2 == 0 {
			retryAfter = s.cfg.Now().Add(wait).UTC().Format(http.TimeFormat)
		}
		w.Header().Set("Retry-After", retryAfter)
		writeJSON(w, http.StatusTooManyRequests, detail{"Too Many Requests"})
	case FaultHang:
		return !sleep(r.Context(), d.f.HangFor)
	case FaultReset:
		resetConn(w)
	case FaultMalformedJSON:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, malformedBody(endpoint))
	case FaultNullFields, FaultForeignHost:
		s.writeBadSession(w, r, d)
	default: // none, or revoke_tokens, already done
		return false
	}
	return true
}

// writeBadSession answers auth_session with a 200 that leads nowhere: null
// fields or a foreign authentication_url. It stores no session.
func (s *Server) writeBadSession(w http.ResponseWriter, r *http.Request, d decision) {
	deviceID, sessionID := normUUID(r.PathValue("device_id")), randomUUID()
	authURL := "https://evil.example/connect/" + sessionID
	out := authSessionOutput{AuthenticationURL: &authURL, DeviceID: &deviceID, SessionID: &sessionID}
	if d.fault == FaultNullFields {
		authURL = s.connectURL(r) + "/connect/" + sessionID // unknown: 404
		switch (d.n - 1) % 3 {
		case 0:
			out.AuthenticationURL = nil
		case 1:
			out.SessionID = nil
		default:
			out.AuthenticationURL, out.SessionID = nil, nil
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// malformedBody is a truncated answer of endpoint.
func malformedBody(endpoint string) string {
	switch endpoint {
	case EndpointToken:
		return `{"access_token": "`
	case EndpointAuthSession:
		return `{"authentication_url": "`
	case EndpointListUsers, EndpointListDevices:
		return `[{"id": "`
	}
	return `{"id": "`
}

// resetConn drops the client's connection with a TCP reset (SO_LINGER 0)
// instead of answering. Where there is no connection to take over (HTTP/2)
// it aborts the request.
func resetConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
