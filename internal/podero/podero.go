// Package podero is a typed client for the parts of the Podero Partner API
// the reauth service uses: creating an authentication session (a re-link URL)
// for a device, and listing a user's devices and an organization's users.
//
// A Client is safe for concurrent use. It holds one OAuth2 access token that
// all goroutines share; see InvalidateToken. Every method fails with an
// *Error whose Kind says what the caller can do about the failure.
//
// Every request, token requests included, passes a circuit breaker (see
// Client.Breaker) and then the optional shared Limiter before it is sent.
package podero

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/reauth/reauth/internal/hostlist"
)

// Defaults for Config.
const (
	// RequestTimeoutDefault is the default per request timeout, for API calls
	// and for token fetches alike.
	RequestTimeoutDefault = 15 * time.Second

	// TokenRefreshEarlyDefault is how long before its expiry a cached access
	// token is replaced by default.
	TokenRefreshEarlyDefault = 60 * time.Second

	// TokenPath is the path of the OAuth2 token endpoint below BaseURL, used
	// when Config.TokenURL is empty.
	TokenPath = "/api/partners/v2.0/auth/token"

	// MaxBodyBytes is the largest response body read. A successful response
	// with a larger body is malformed.
	MaxBodyBytes = 1 << 20

	// MaxDetailBytes is the most of an error response body kept in
	// Error.Detail.
	MaxDetailBytes = 1 << 10

	// MaxListBytes is the largest list response read whole (ListDevices,
	// ListUsers); lists of big organizations exceed MaxBodyBytes. The
	// streamed users list (ForEachUser) is not capped as a whole: it costs
	// no memory, and each user in it is capped at MaxUserBytes.
	MaxListBytes = 64 << 20

	// MaxIdleConnsPerHostDefault is the idle connection pool size per host of
	// the default HTTP client.
	MaxIdleConnsPerHostDefault = 64

	// UserAgent is sent with every API request.
	UserAgent = "reauth"

	// RetryAfterDefault is Error.RetryAfter of a 429 whose Retry-After is
	// missing, unparsable or zero.
	RetryAfterDefault = 5 * time.Second

	// BreakerFailuresDefault is how many consecutive retryable failures open
	// the circuit breaker by default.
	BreakerFailuresDefault = 5

	// BreakerCoolOffDefault is how long the circuit breaker stays open by
	// default before it lets one probe request through.
	BreakerCoolOffDefault = 30 * time.Second

	// BreakerProbeWaitDefault is Error.RetryAfter of a call refused because
	// the half-open breaker's probe is in flight.
	BreakerProbeWaitDefault = time.Second

	// ProblemLogEvery is how often at most a configuration problem (a link
	// host not on the list, credentials the token endpoint rejects) is logged
	// at ERROR while it lasts: once per host, or per token error, per
	// interval rather than once per job.
	ProblemLogEvery = time.Minute
)

// Token request bodies, the values of Config.TokenBody.
const (
	// TokenBodyForm is RFC 6749's application/x-www-form-urlencoded body,
	// what OAuth2 libraries send.
	TokenBodyForm = "form"
	// TokenBodyJSON is a JSON object with the same fields
	// ({"grant_type": "client_credentials"}), as Podero's getting-started
	// guide posts it.
	TokenBodyJSON = "json"
	// TokenBodyAuto sends the form first; when the token endpoint answers it
	// with a 400, 415 or 422 that is not an RFC 6749 credentials error (no
	// error code, or invalid_request or unsupported_grant_type), the same
	// fetch tries the JSON body once, and the body that worked is used
	// first from then on.
	TokenBodyAuto = "auto"

	// TokenBodyDefault is the default Config.TokenBody.
	TokenBodyDefault = TokenBodyAuto
)

// LinkHostsDefault are the hosts an authentication_url may point at by
// default: Podero's end-user Connect UI (its links look like
// https://connect.podero.com?onboarding_session_id=...) and its production
// and sandbox apps. Treat it as read-only; a Client copies it and never sees
// later changes.
var LinkHostsDefault = []string{"connect.podero.com", "app.podero.com", "sandbox-app.podero.com"}

// Config configures a Client. Only BaseURL, ClientID and ClientSecret are
// required; every other zero value means the documented default.
type Config struct {
	// BaseURL is the root of the API, e.g. https://app.podero.com (a trailing
	// slash is ignored). It must be an absolute http or https URL without user
	// info, query or fragment.
	BaseURL string

	// TokenURL is the full URL of the OAuth2 token endpoint. Default
	// BaseURL + TokenPath.
	TokenURL string

	// ClientID and ClientSecret are the partner's OAuth2 client credentials,
	// sent with HTTP Basic authentication.
	ClientID     string
	ClientSecret string

	// Username and Password, when both set, select the OAuth2 password
	// grant; otherwise the client credentials grant is used.
	Username string
	Password string

	// TokenBody is how a token request carries its fields: TokenBodyForm,
	// TokenBodyJSON or TokenBodyAuto. Either way the client credentials go
	// in the Basic header. Default TokenBodyDefault.
	TokenBody string

	// HTTPClient makes every request. Default: a client with Timeout
	// RequestTimeout, a keep-alive transport with MaxIdleConnsPerHost
	// MaxIdleConnsPerHostDefault, that does not follow redirects.
	HTTPClient *http.Client

	// RequestTimeout bounds each request. Default RequestTimeoutDefault.
	RequestTimeout time.Duration

	// TokenRefreshEarly is how long before its expiry a cached token is
	// replaced. It is capped at half the token's lifetime so that a
	// short-lived token is still reused. Default TokenRefreshEarlyDefault.
	TokenRefreshEarly time.Duration

	// LinkHosts are the hosts an authentication_url may point at: an exact
	// host with an optional port ("app.podero.com", "localhost:8443"), or
	// "*.example.com" for any subdomain of example.com. Such links must be
	// https; a pattern without a port allows only port 443. An entry written
	// "http://host:port" explicitly allows plain http on that host and port
	// (for a simulator reached under another name than BaseURL).
	//
	// The host of BaseURL is always allowed, with BaseURL's own scheme, so
	// that a local simulator on http works.
	//
	// Default (nil) LinkHostsDefault. A non-nil empty slice allows only the
	// host of BaseURL.
	LinkHosts []string

	// Observe, when set, is told of every API request: its operation, the
	// response status (0 when none came) and how long it took. For metrics.
	Observe func(op string, status int, took time.Duration)

	// LinkRejected, when set, is told of every authentication_url turned
	// away because its host is not on LinkHosts, with the entry that would
	// allow it ("host[:port]", or "http://host:port" for a plain http link).
	// For metrics; the client itself logs it and reports it in Problems.
	LinkRejected func(host string)

	// Limiter, when set, spaces out requests across every process sharing
	// it: every request waits for it first (at most RequestTimeout), and a
	// 429 (or a 503 with Retry-After) makes it hold every process. Default
	// nil: unlimited.
	Limiter Limiter

	// BreakerFailures is how many consecutive retryable failures (5xx,
	// timeouts, connection errors) open the circuit breaker. Default
	// BreakerFailuresDefault.
	BreakerFailures int

	// BreakerCoolOff is how long the open breaker fails every call before
	// it lets one probe through. Default BreakerCoolOffDefault.
	BreakerCoolOff time.Duration

	// Logger receives the breaker's state changes, failures of
	// Limiter.HoldUntil, and at ERROR the configuration problems (see
	// Problems). Default: discard.
	Logger *slog.Logger

	// Now is the clock for token expiry, Retry-After dates and the breaker.
	// Default time.Now.
	Now func() time.Time

	// TracerProvider, when set, traces every call in a span podero.<op>
	// (see guard). Default nil: tracing off.
	TracerProvider trace.TracerProvider
}

// withDefaults returns a copy of c with defaults filled in.
func (c Config) withDefaults() Config {
	if c.Observe == nil {
		c.Observe = func(string, int, time.Duration) {}
	}
	if c.LinkRejected == nil {
		c.LinkRejected = func(string) {}
	}
	if c.TokenBody == "" {
		c.TokenBody = TokenBodyDefault
	}
	c.BaseURL = strings.TrimRight(c.BaseURL, "/")
	if c.TokenURL == "" && c.BaseURL != "" {
		c.TokenURL = c.BaseURL + TokenPath
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = RequestTimeoutDefault
	}
	if c.TokenRefreshEarly == 0 {
		c.TokenRefreshEarly = TokenRefreshEarlyDefault
	}
	if c.LinkHosts == nil {
		c.LinkHosts = slices.Clone(LinkHostsDefault)
	}
	if c.HTTPClient == nil {
		c.HTTPClient = newHTTPClient(c.RequestTimeout)
	}
	if c.BreakerFailures == 0 {
		c.BreakerFailures = BreakerFailuresDefault
	}
	if c.BreakerCoolOff == 0 {
		c.BreakerCoolOff = BreakerCoolOffDefault
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// newHTTPClient is the default HTTP client: keep-alive connections pooled for
// many concurrent calls to one host, and no redirects (a redirect would turn
// the POST into a GET and might carry the bearer token elsewhere; it is
// reported as an error instead).
func newHTTPClient(timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 2 * MaxIdleConnsPerHostDefault
	tr.MaxIdleConnsPerHost = MaxIdleConnsPerHostDefault
	tr.IdleConnTimeout = 90 * time.Second
	return &http.Client{
		Timeout:   timeout,
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Client calls the Podero Partner API. Create one with New.
type Client struct {
	cfg       Config
	baseURL   *url.URL
	linkHosts hostlist.List

	// oauth2 configuration; exactly one of cc and pw is set.
	cc *clientcredentials.Config
	pw *oauth2.Config

	breaker *breaker
	tracer  trace.Tracer // nil: tracing off

	tokenMu   sync.Mutex
	token     *cachedToken // nil when there is none
	tokenInFl *tokenFetch  // the fetch in flight, nil when none
	// tokenBody is the body a token request tries first; with
	// TokenBodyAuto it becomes the one that last worked.
	tokenBody      string
	tokenBodyKnown bool // a token was had with TokenBodyAuto (logged once)

	problems problems
}

// New validates cfg and returns a Client. Its errors never contain the
// client secret or the password.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()

	base, err := parseHTTPURL("BaseURL", cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	if _, err := parseHTTPURL("TokenURL", cfg.TokenURL); err != nil {
		return nil, err
	}
	if cfg.ClientID == "" {
		return nil, errors.New("podero: ClientID is required")
	}
	if cfg.ClientSecret == "" {
		return nil, errors.New("podero: ClientSecret is required")
	}
	if (cfg.Username == "") != (cfg.Password == "") {
		return nil, errors.New("podero: Username and Password must be set together")
	}
	if cfg.RequestTimeout < 0 {
		return nil, errors.New("podero: RequestTimeout must not be negative")
	}
	if cfg.TokenRefreshEarly < 0 {
		return nil, errors.New("podero: TokenRefreshEarly must not be negative")
	}
	if cfg.BreakerFailures < 0 {
		return nil, errors.New("podero: BreakerFailures must not be negative")
	}
	if cfg.BreakerCoolOff < 0 {
		return nil, errors.New("podero: BreakerCoolOff must not be negative")
	}
	switch cfg.TokenBody {
	case TokenBodyForm, TokenBodyJSON, TokenBodyAuto:
	default:
		return nil, errors.New("podero: TokenBody must be form, json or auto")
	}
	hosts, err := hostlist.Parse(cfg.LinkHosts)
	if err != nil {
		return nil, fmt.Errorf("podero: LinkHosts: %w", err)
	}

	c := &Client{
		cfg:       cfg,
		baseURL:   base,
		linkHosts: hosts,
		breaker:   &breaker{threshold: cfg.BreakerFailures, coolOff: cfg.BreakerCoolOff, now: cfg.Now, log: cfg.Logger},
		tokenBody: cfg.TokenBody,
		tracer:    tracerFor(cfg),
	}
	if c.tokenBody == TokenBodyAuto {
		c.tokenBody = TokenBodyForm
	}
	if cfg.Username != "" {
		c.pw = &oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			Endpoint:     oauth2.Endpoint{TokenURL: cfg.TokenURL, AuthStyle: oauth2.AuthStyleInHeader},
		}
	} else {
		c.cc = &clientcredentials.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			TokenURL:     cfg.TokenURL,
			AuthStyle:    oauth2.AuthStyleInHeader,
		}
	}
	return c, nil
}

// parseHTTPURL checks that s is an absolute http(s) URL with a host and
// without user info, query or fragment. The error names the field only: the
// URL itself might carry credentials.
func parseHTTPURL(field, s string) (*url.URL, error) {
	if s == "" {
		return nil, fmt.Errorf("podero: %s is required", field)
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("podero: %s must be an absolute http or https URL", field)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("podero: %s must not have user info, a query or a fragment", field)
	}
	return u, nil
}

// MaxLinkBytes bounds an authentication_url: it goes out in a Location
// header and in messages, and proxies answer 502 to headers of a few KiB.
// Podero's links are well under 200 bytes; a longer one is malformed.
const MaxLinkBytes = 4 << 10

// checkLink returns why raw may not be sent to a user as an authentication
// link, or nil when it may. A link turned away for its host, a configuration
// problem rather than Podero's, is also logged and counted (linkRejected).
func (c *Client) checkLink(raw string) error {
	if len(raw) > MaxLinkBytes {
		return fmt.Errorf("authentication_url is %d bytes long, more than %d", len(raw), MaxLinkBytes)
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return errors.New("authentication_url is not an absolute URL")
	}
	if u.User != nil {
		return errors.New("authentication_url has user info")
	}
	if u.Scheme == c.baseURL.Scheme && strings.EqualFold(u.Host, c.baseURL.Host) {
		return nil
	}
	if u.Scheme != "https" && u.Scheme != "http" {
		return fmt.Errorf("authentication_url scheme %q is not https", u.Scheme)
	}
	if c.linkHosts.Allows(u) {
		return nil
	}
	if u.Scheme != "https" {
		https := *u
		https.Scheme, https.Host = "https", u.Hostname() // the same link over https, on 443
		if strings.Contains(https.Host, ":") {
			https.Host = "[" + https.Host + "]" // IPv6
		}
		if c.linkHosts.Allows(&https) {
			// An allowed host but plain http: Podero's fault, not the list's.
			return fmt.Errorf("authentication_url scheme %q is not https", u.Scheme)
		}
		// Only an explicit http:// entry allows a plain http link.
		entry := "http://" + strings.ToLower(u.Host)
		c.linkRejected(entry)
		return fmt.Errorf("authentication_url scheme %q is not https, and host %q is not on %s", u.Scheme, entry, SettingLinkHosts)
	}
	host := strings.ToLower(u.Host)
	c.linkRejected(host)
	return fmt.Errorf("authentication_url host %q is not allowed (not on %s)", host, SettingLinkHosts)
}

// redact replaces the client's secrets, the access token in use and any
// more values (what the request sent, which Podero may echo) in s.
func (c *Client) redact(s, accessToken string, more ...string) string {
	for _, secret := range append([]string{c.cfg.ClientSecret, c.cfg.Password, accessToken}, more...) {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "[redacted]")
		}
	}
	return s
}

// requestContext bounds ctx by the request timeout.
func (c *Client) requestContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.cfg.RequestTimeout)
}
