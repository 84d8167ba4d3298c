package podero

import (
	"strconv"
	"strings"
	"sync"
	"time"
)

// The service's settings an operator fixes, named as its environment calls
// them, for the ERROR logs and the hints of Problems.
const (
	SettingLinkHosts = "PODERO_LINK_HOSTS"
	// SettingsToken are the settings of a token request.
	SettingsToken = "PODERO_CLIENT_ID, PODERO_CLIENT_SECRET, PODERO_TOKEN_URL, PODERO_TOKEN_BODY"
	// SettingsPassword are added to SettingsToken with the password grant.
	SettingsPassword = "PODERO_USERNAME, PODERO_PASSWORD"
)

// maxRejectedHosts bounds the link hosts a Client keeps counts for; when
// more turn up, the counts start over.
const maxRejectedHosts = 32

// Problems are what a Client has seen that an operator must fix and that
// restarting does not: they are configuration, not Podero being unwell. See
// Client.Problems.
type Problems struct {
	// LinkRejected is the latest authentication_url turned away because its
	// host is not on LinkHosts; nil when there was none since the client was
	// made.
	LinkRejected *LinkRejection
	// Token is the last failed token fetch; nil when there was none or a
	// later fetch succeeded. Fetches refused without asking (breaker open,
	// rate limiter deferring) do not count.
	Token *TokenProblem
	// Unexpected is the latest answer the API does not document
	// (KindUnexpected: a redirect, a 405, 409, 410, ...); nil when there was
	// none since the client was made.
	Unexpected *UnexpectedAnswer
}

// UnexpectedAnswer describes answers of KindUnexpected: the jobs that got
// them are retried with backoff, not cancelled.
type UnexpectedAnswer struct {
	// Error is the latest one's *Error text (the body trimmed, a
	// redirect's host only).
	Error string
	Op    string
	// Status is its HTTP status.
	Status int
	// At is when it came; Count how many came since the client was made.
	At    time.Time
	Count int
	// Hint says what to check.
	Hint string
}

// unexpectedHint is UnexpectedAnswer.Hint.
const unexpectedHint = "check PODERO_BASE_URL; Podero may be in maintenance (the requests are retried with backoff)"

// LinkRejection describes authentication_urls turned away for their host.
type LinkRejection struct {
	// Host is the LinkHosts entry that would allow them: "host[:port]", or
	// "http://host:port" for plain http links.
	Host string
	// At is when the latest was turned away.
	At time.Time
	// Count is how many on Host were turned away.
	Count int
	// Hint says what to do, e.g. "add it to PODERO_LINK_HOSTS".
	Hint string
}

// TokenProblem describes a failed token fetch.
type TokenProblem struct {
	// Error is the fetch's *Error text (never a secret).
	Error string
	// At is when it failed.
	At time.Time
	// Credentials is true when the token endpoint rejected the credentials
	// (401, 403, or an RFC 6749 code such as invalid_client).
	Credentials bool
	// Hint names the settings to check when the failure is not transient
	// (rejected credentials, a 404 or another 4xx: KindUnauthorized); empty
	// otherwise.
	Hint string
}

// problems is a Client's record of Problems, and of when each was last
// logged.
type problems struct {
	mu     sync.Mutex
	hosts  map[string]*hostRejections
	latest string // the host of the latest rejection
	token  *TokenProblem

	tokenLogged   string // the error last logged
	tokenLoggedAt time.Time

	unexpected         *UnexpectedAnswer
	unexpectedLogged   string // the op and status last logged
	unexpectedLoggedAt time.Time
}

type hostRejections struct {
	count        int
	at, loggedAt time.Time
}

// Problems returns what the client has seen that an operator must fix, for
// a readiness report.
func (c *Client) Problems() Problems {
	p := &c.problems
	p.mu.Lock()
	defer p.mu.Unlock()
	var out Problems
	if h := p.hosts[p.latest]; h != nil {
		out.LinkRejected = &LinkRejection{Host: p.latest, At: h.at, Count: h.count, Hint: "add it to " + SettingLinkHosts}
	}
	if p.token != nil {
		t := *p.token
		out.Token = &t
	}
	if p.unexpected != nil {
		u := *p.unexpected
		out.Unexpected = &u
	}
	return out
}

// unexpectedAnswer records an answer of KindUnexpected and logs it at
// ERROR, once per operation and status per ProblemLogEvery: a redirect or
// an undocumented 4xx for every request means a wrong PODERO_BASE_URL or
// Podero in maintenance, and its jobs are retried rather than cancelled, so
// someone must hear of it.
func (c *Client) unexpectedAnswer(e *Error) {
	now := c.cfg.Now()
	p := &c.problems
	p.mu.Lock()
	count := 1
	if p.unexpected != nil {
		count = p.unexpected.Count + 1
	}
	p.unexpected = &UnexpectedAnswer{Error: e.Error(), Op: e.Op, Status: e.Status, At: now, Count: count, Hint: unexpectedHint}
	key := e.Op + " " + strconv.Itoa(e.Status)
	log := key != p.unexpectedLogged || now.Sub(p.unexpectedLoggedAt) >= ProblemLogEvery
	if log {
		p.unexpectedLogged, p.unexpectedLoggedAt = key, now
	}
	p.mu.Unlock()
	if log {
		c.cfg.Logger.Error("podero: an answer the API does not document (a redirect or an unknown 4xx); the request is retried with backoff, not cancelled; "+unexpectedHint,
			"op", e.Op, "status", e.Status, "error", e.Error(), "base_url", c.cfg.BaseURL, "count", count)
	}
}

// linkRejected records an authentication_url turned away because host (the
// LinkHosts entry that would allow it) is not on the list: it is counted,
// told to Config.LinkRejected and logged at ERROR, once per host per
// ProblemLogEvery.
func (c *Client) linkRejected(host string) {
	now := c.cfg.Now()
	p := &c.problems
	p.mu.Lock()
	h := p.hosts[host]
	if h == nil {
		if p.hosts == nil || len(p.hosts) >= maxRejectedHosts {
			p.hosts = map[string]*hostRejections{}
		}
		h = &hostRejections{}
		p.hosts[host] = h
	}
	h.count++
	h.at = now
	p.latest = host
	log := h.loggedAt.IsZero() || now.Sub(h.loggedAt) >= ProblemLogEvery
	if log {
		h.loggedAt = now
	}
	count := h.count
	p.mu.Unlock()

	c.cfg.LinkRejected(host)
	if log {
		c.cfg.Logger.Error("podero: authentication_url turned away: its host is not on "+SettingLinkHosts+
			"; no link on it reaches a user until the host is added there (the jobs are retried meanwhile)",
			"host", host, "setting", SettingLinkHosts, "rejected", count)
	}
}

// tokenFetched records the outcome of a token fetch that sent body: a
// success clears the last token problem; a failure becomes it, and one that
// is not transient is logged at ERROR with the settings to check, once per
// error per ProblemLogEvery.
func (c *Client) tokenFetched(e *Error, body string) {
	p := &c.problems
	if e == nil {
		p.mu.Lock()
		p.token = nil
		p.mu.Unlock()
		return
	}
	if e.Kind == KindCircuitOpen || (e.Kind == KindRateLimited && e.Status == 0) {
		return // nothing was asked
	}
	now := c.cfg.Now()
	tp := &TokenProblem{Error: e.Error(), At: now, Credentials: credentialsRejected(e)}
	if !e.Temporary() {
		tp.Hint = "check " + c.tokenSettings()
	}
	p.mu.Lock()
	p.token = tp
	log := tp.Hint != "" && (tp.Error != p.tokenLogged || now.Sub(p.tokenLoggedAt) >= ProblemLogEvery)
	if log {
		p.tokenLogged, p.tokenLoggedAt = tp.Error, now
	}
	p.mu.Unlock()
	if !log {
		return
	}
	msg := "podero: token request failed; check " + c.tokenSettings()
	if tp.Credentials {
		msg = "podero: the token endpoint rejected the credentials; check " + c.tokenSettings()
	}
	// Never the secret nor the password: their names only.
	c.cfg.Logger.Error(msg, "error", tp.Error, "check", c.tokenSettings(),
		"token_url", c.cfg.TokenURL, "token_body", body, "client_id", c.cfg.ClientID)
}

// tokenSettings names the settings a token request depends on.
func (c *Client) tokenSettings() string {
	s := []string{SettingsToken}
	if c.pw != nil {
		s = append(s, SettingsPassword)
	}
	return strings.Join(s, ", ")
}
