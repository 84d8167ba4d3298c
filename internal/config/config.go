// Package config reads the service's one typed configuration from the
// environment, validates it once, and prints it with every secret masked.
//
// Every variable may instead be read from a file named by the same variable
// with a _FILE suffix (for example PODERO_CLIENT_SECRET_FILE), the usual way to
// pass Kubernetes and Docker secrets.
package config

import (
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/hostlist"
)

// Defaults for the optional settings.
// ReminderOffsetsDefault is when reminders go out, after the session's
// creation: a day and three days.
var ReminderOffsetsDefault = []time.Duration{24 * time.Hour, 72 * time.Hour}

// PoolConns is how many Postgres connections a process opens, unless
// DATABASE_URL sets pool_max_conns. The benchmark's commit ceiling uses the
// same number.
func PoolConns() int { return 10 }

const (
	HTTPAddrDefault          = ":8080"
	LinkTTLDefault           = 24 * time.Hour
	PoderoWorkersDefault     = 100 // with no rate limit; see PoderoWorkersFor
	NotifyWorkersDefault     = 100
	SMTPConnsDefault         = 4
	LinkRenewWaitDefault     = 5 * time.Second
	JobTimeoutDefault        = time.Minute
	RescueAfterDefault       = 5 * time.Minute
	PoderoRateLimitDefault   = 10.0
	PoderoRateMaxWaitDefault = 20 * time.Second
	SyncRateShareDefault     = 0.5
	PoderoTimeoutDefault     = 15 * time.Second
	PoderoTokenBodyDefault   = "auto" // podero.TokenBodyDefault
	BreakerFailuresDefault   = 5
	BreakerCoolOffDefault    = 30 * time.Second
	RetryCapDefault          = time.Hour
	MaxAttemptsDefault       = reauth.MaxAttemptsDefault
	ShutdownGraceDefault     = 20 * time.Second
	SyncScheduleDefault      = "*/30 * * * *"
	EventsGiveUpAfterDefault = 24 * time.Hour // worker.EventsGiveUpAfterDefault
	SyncIntervalDefault      = 6 * time.Hour  // worker.SyncIntervalDefault
	SweepScheduleDefault     = "10,40 * * * *"
	ReauthCooldownDefault    = 72 * time.Hour
	RepeatCooldownDefault    = 30 * time.Minute
	ReauthMaxPerWeekDefault  = 3
	SweepBatchDefault        = 1000
	// MinLinkSecretLen is the shortest LINK_SECRET accepted, in bytes.
	MinLinkSecretLen = 32
)

// Secret is a string that never prints: its String, GoString and LogValue
// all return a mask, so a Config can be logged as a whole.
type Secret string

func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "********"
}
func (s Secret) GoString() string             { return s.String() }
func (s Secret) LogValue() slog.Value         { return slog.StringValue(s.String()) }
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the secret itself; call it only where the value is used.
func (s Secret) Reveal() string { return string(s) }

// API token scopes: what a bearer token may do.
const (
	ScopeEnqueue = "enqueue" // POST /v1/reauth
	ScopeRead    = "read"    // GET /v1/devices/... (sessions' authentication_url shortened to its origin)
	ScopeOps     = "ops"     // the ops page and API
	// ScopeLinks shows, with read, sessions' authentication_url whole: a
	// live one is the user's login link.
	ScopeLinks = "links"
)

// APIToken is one bearer token accepted by /v1, kept only as its SHA-256.
type APIToken struct {
	Name   string
	Scopes []string
	Hash   [sha256.Size]byte
}

// Allows reports whether the token has scope.
func (t APIToken) Allows(scope string) bool {
	for _, s := range t.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// Config is everything the service reads from its environment.
type Config struct {
	DatabaseURL Secret // DATABASE_URL; may hold a password

	PoderoBaseURL      string        // PODERO_BASE_URL
	PoderoTokenURL     string        // PODERO_TOKEN_URL; default PODERO_BASE_URL + /api/partners/v2.0/auth/token
	PoderoClientID     string        // PODERO_CLIENT_ID
	PoderoClientSecret Secret        // PODERO_CLIENT_SECRET
	PoderoUsername     string        // PODERO_USERNAME; with PODERO_PASSWORD selects the password grant
	PoderoPassword     Secret        // PODERO_PASSWORD
	PoderoTokenBody    string        // PODERO_TOKEN_BODY: form|json|auto, how token requests carry their fields
	PoderoLinkHosts    []string      // PODERO_LINK_HOSTS; hosts authentication_url may point at (empty: Podero's own, connect.podero.com among them)
	PoderoRateLimit    float64       // PODERO_RATE_LIMIT; calls per second, all processes together; 0 = no limit
	PoderoRateBurst    int           // PODERO_RATE_BURST; default 1 + PODERO_RATE_LIMIT/10
	PoderoRateMaxWait  time.Duration // PODERO_RATE_MAX_WAIT; a longer wait for a slot snoozes the job instead
	SyncRateShare      float64       // SYNC_RATE_SHARE; the share of the rate the sync takes while requests wait
	PoderoTimeout      time.Duration // PODERO_TIMEOUT; per request to Podero
	BreakerFailures    int           // PODERO_BREAKER_FAILURES; consecutive failures that open the circuit breaker
	BreakerCoolOff     time.Duration // PODERO_BREAKER_COOLOFF; how long it stays open before one probe

	SMTPURL   Secret // SMTP_URL; may hold a password
	SMTPConns int    // SMTP_CONNS; connections sending at once, per process
	MailFrom  string // MAIL_FROM

	TemplatesDir      string          // TEMPLATES_DIR; operator overrides of the message templates
	ReminderOffsets   []time.Duration // REMINDER_OFFSETS; after the first message, while the device is not reconnected
	LinkRenewWait     time.Duration   // LINK_RENEW_WAIT; how long opening an expired link waits for a fresh session
	FCMProjectID      string          // FCM_PROJECT_ID; set to enable push
	FCMCredentials    string          // FCM_CREDENTIALS_FILE; service account JSON
	FCMEndpoint       string          // FCM_ENDPOINT; another FCM HTTP v1 endpoint (tests, emulators)
	PushWebhookURL    string          // PUSH_WEBHOOK_URL; the partner's push service (webhook channel)
	PushWebhookSecret Secret          // PUSH_WEBHOOK_SECRET; whsec_...
	EventsWebhookURL  string          // EVENTS_WEBHOOK_URL; the partner's backend, for reauth.* events
	EventsSecret      Secret          // EVENTS_WEBHOOK_SECRET; whsec_...
	EventsGiveUpAfter time.Duration   // EVENTS_GIVE_UP_AFTER; how long an event is retried while the endpoint answers 401, 403, 404 or a redirect

	PublicBaseURL string // PUBLIC_BASE_URL; where links and callbacks point
	HTTPAddr      string // HTTP_ADDR
	PprofAddr     string // PPROF_ADDR; "" (the default): no profiling endpoint
	APITokens     []APIToken
	LinkSecret    Secret        // LINK_SECRET; key that derives link tokens (32+ bytes)
	LinkTTL       time.Duration // LINK_TTL
	SuccessURL    string        // SUCCESS_URL; partner page after a completed login
	RedirectHosts []string      // REDIRECT_HOSTS; hosts a request's success_url/cancel_url may name
	CancelURL     string        // CANCEL_URL; partner page after a cancelled login

	PoderoWorkers int           // PODERO_WORKERS
	NotifyWorkers int           // NOTIFY_WORKERS
	JobTimeout    time.Duration // JOB_TIMEOUT
	RescueAfter   time.Duration // JOB_RESCUE_AFTER; a job running longer is deemed abandoned and retried
	RetryCap      time.Duration // RETRY_BACKOFF_CAP; the longest backoff between attempts
	MaxAttempts   int           // MAX_ATTEMPTS; attempts before a job is given up (discarded)
	ShutdownGrace time.Duration // SHUTDOWN_GRACE; running jobs get this long to finish on SIGTERM

	OrgIDs           []string      // PODERO_ORG_IDS; organizations the device sync lists
	SyncSchedule     string        // SYNC_SCHEDULE; when the users lists are refreshed, cron (5 fields) or "off" (no scheduled sync at all)
	SyncInterval     time.Duration // SYNC_INTERVAL; how often at most each user's devices are listed
	SweepSchedule    string        // SWEEP_SCHEDULE; cron (5 fields) or "off"
	ReauthCooldown   time.Duration // REAUTH_COOLDOWN; the sweep skips devices messaged this recently
	RepeatCooldown   time.Duration // REAUTH_REPEAT_COOLDOWN; a request for a device that completed this recently is a duplicate (0: off)
	ReauthMaxPerWeek int           // REAUTH_MAX_PER_WEEK; messages per device in seven days at most
	SweepBatch       int           // SWEEP_BATCH; devices per sweep page

	LogFormat string // LOG_FORMAT: text|json; empty picks text on a terminal, json otherwise
	LogLevel  slog.Level
}

// Load reads the environment through getenv (os.Getenv in production).
// It checks the format of what is set; Require checks what a command needs.
func Load(getenv func(string) string) (Config, error) {
	e := env{getenv: getenv}
	c := Config{
		DatabaseURL:        Secret(e.str("DATABASE_URL")),
		PoderoBaseURL:      strings.TrimRight(e.str("PODERO_BASE_URL"), "/"),
		PoderoTokenURL:     e.str("PODERO_TOKEN_URL"),
		PoderoClientID:     e.str("PODERO_CLIENT_ID"),
		PoderoClientSecret: Secret(e.str("PODERO_CLIENT_SECRET")),
		PoderoUsername:     e.str("PODERO_USERNAME"),
		PoderoPassword:     Secret(e.str("PODERO_PASSWORD")),
		PoderoTokenBody:    cmp.Or(e.str("PODERO_TOKEN_BODY"), PoderoTokenBodyDefault),
		PoderoLinkHosts:    e.list("PODERO_LINK_HOSTS"),
		PoderoRateLimit:    e.float("PODERO_RATE_LIMIT", PoderoRateLimitDefault),
		PoderoRateMaxWait:  e.duration("PODERO_RATE_MAX_WAIT", PoderoRateMaxWaitDefault),
		PoderoTimeout:      e.duration("PODERO_TIMEOUT", PoderoTimeoutDefault),
		BreakerFailures:    e.integer("PODERO_BREAKER_FAILURES", BreakerFailuresDefault),
		BreakerCoolOff:     e.duration("PODERO_BREAKER_COOLOFF", BreakerCoolOffDefault),
		SMTPURL:            Secret(e.str("SMTP_URL")),
		SMTPConns:          e.integer("SMTP_CONNS", SMTPConnsDefault),
		MailFrom:           e.str("MAIL_FROM"),
		TemplatesDir:       e.str("TEMPLATES_DIR"),
		LinkRenewWait:      e.duration("LINK_RENEW_WAIT", LinkRenewWaitDefault),
		FCMProjectID:       e.str("FCM_PROJECT_ID"),
		FCMCredentials:     e.str("FCM_CREDENTIALS_FILE"),
		FCMEndpoint:        strings.TrimRight(e.str("FCM_ENDPOINT"), "/"),
		PushWebhookURL:     e.str("PUSH_WEBHOOK_URL"),
		PushWebhookSecret:  Secret(e.str("PUSH_WEBHOOK_SECRET")),
		EventsWebhookURL:   e.str("EVENTS_WEBHOOK_URL"),
		EventsSecret:       Secret(e.str("EVENTS_WEBHOOK_SECRET")),
		EventsGiveUpAfter:  e.duration("EVENTS_GIVE_UP_AFTER", EventsGiveUpAfterDefault),
		PublicBaseURL:      strings.TrimRight(e.str("PUBLIC_BASE_URL"), "/"),
		HTTPAddr:           e.str("HTTP_ADDR"),
		PprofAddr:          e.str("PPROF_ADDR"),
		LinkSecret:         Secret(e.str("LINK_SECRET")),
		LinkTTL:            e.duration("LINK_TTL", LinkTTLDefault),
		SuccessURL:         e.str("SUCCESS_URL"),
		RedirectHosts:      e.list("REDIRECT_HOSTS"),
		CancelURL:          e.str("CANCEL_URL"),
		NotifyWorkers:      e.integer("NOTIFY_WORKERS", NotifyWorkersDefault),
		JobTimeout:         e.duration("JOB_TIMEOUT", JobTimeoutDefault),
		RescueAfter:        e.duration("JOB_RESCUE_AFTER", RescueAfterDefault),
		RetryCap:           e.duration("RETRY_BACKOFF_CAP", RetryCapDefault),
		MaxAttempts:        e.integer("MAX_ATTEMPTS", MaxAttemptsDefault),
		ShutdownGrace:      e.duration("SHUTDOWN_GRACE", ShutdownGraceDefault),
		LogFormat:          e.str("LOG_FORMAT"),
		OrgIDs:             e.list("PODERO_ORG_IDS"),
		SyncSchedule:       cmp.Or(e.str("SYNC_SCHEDULE"), SyncScheduleDefault),
		SyncInterval:       e.duration("SYNC_INTERVAL", SyncIntervalDefault),
		SweepSchedule:      cmp.Or(e.str("SWEEP_SCHEDULE"), SweepScheduleDefault),
		ReauthCooldown:     e.duration("REAUTH_COOLDOWN", ReauthCooldownDefault),
		RepeatCooldown:     e.duration("REAUTH_REPEAT_COOLDOWN", RepeatCooldownDefault),
		ReauthMaxPerWeek:   e.integer("REAUTH_MAX_PER_WEEK", ReauthMaxPerWeekDefault),
		SweepBatch:         e.integer("SWEEP_BATCH", SweepBatchDefault),
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = HTTPAddrDefault
	}
	if c.PoderoTokenURL == "" && c.PoderoBaseURL != "" {
		c.PoderoTokenURL = c.PoderoBaseURL + "/api/partners/v2.0/auth/token"
	}
	c.ReminderOffsets = e.durations("REMINDER_OFFSETS", ReminderOffsetsDefault)
	c.PoderoRateBurst = e.integer("PODERO_RATE_BURST", 1+int(c.PoderoRateLimit/10))
	c.PoderoWorkers = e.integer("PODERO_WORKERS", PoderoWorkersFor(c.PoderoRateLimit))
	c.SyncRateShare = e.float("SYNC_RATE_SHARE", SyncRateShareDefault)
	c.APITokens = e.tokens("API_TOKENS")
	if lvl := e.str("LOG_LEVEL"); lvl != "" {
		if err := c.LogLevel.UnmarshalText([]byte(lvl)); err != nil {
			e.errs = append(e.errs, fmt.Errorf("LOG_LEVEL must be debug, info, warn or error"))
		}
	}

	errs := e.errs
	switch c.LogFormat {
	case "", "text", "json":
	default:
		errs = append(errs, errors.New("LOG_FORMAT must be text or json"))
	}
	for _, u := range []struct{ name, v string }{
		{"PODERO_BASE_URL", c.PoderoBaseURL}, {"PODERO_TOKEN_URL", c.PoderoTokenURL},
		{"PUBLIC_BASE_URL", c.PublicBaseURL}, {"SUCCESS_URL", c.SuccessURL}, {"CANCEL_URL", c.CancelURL},
	} {
		if u.v != "" {
			if err := reauth.ValidateURL(u.v); err != nil {
				errs = append(errs, fmt.Errorf("%s %w", u.name, err))
			}
		}
	}
	if _, err := hostlist.Parse(c.RedirectHosts); err != nil {
		errs = append(errs, fmt.Errorf("REDIRECT_HOSTS: %w", err))
	}
	if _, err := hostlist.Parse(c.PoderoLinkHosts); err != nil {
		errs = append(errs, fmt.Errorf("PODERO_LINK_HOSTS: %w", err))
	}
	if c.SMTPURL != "" {
		if u, err := url.Parse(c.SMTPURL.Reveal()); err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Host == "" {
			errs = append(errs, errors.New("SMTP_URL must look like smtp://user:pass@host:port or smtps://..."))
		}
	}
	for _, u := range []struct{ name, v string }{{"PUSH_WEBHOOK_URL", c.PushWebhookURL}, {"EVENTS_WEBHOOK_URL", c.EventsWebhookURL}, {"FCM_ENDPOINT", c.FCMEndpoint}} {
		if u.v == "" {
			continue
		}
		if pu, err := url.Parse(u.v); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" || pu.User != nil {
			errs = append(errs, fmt.Errorf("%s must be an http(s) URL without user info", u.name))
		}
	}
	for _, w := range []struct {
		url, secret, name string
	}{{c.PushWebhookURL, c.PushWebhookSecret.Reveal(), "PUSH_WEBHOOK"}, {c.EventsWebhookURL, c.EventsSecret.Reveal(), "EVENTS_WEBHOOK"}} {
		if (w.url == "") != (w.secret == "") {
			errs = append(errs, fmt.Errorf("%s_URL and %s_SECRET must be set together", w.name, w.name))
		} else if w.secret != "" && !strings.HasPrefix(w.secret, "whsec_") {
			errs = append(errs, fmt.Errorf("%s_SECRET must start with whsec_ (base64 key after it)", w.name))
		}
	}
	if c.FCMProjectID == "" && (c.FCMCredentials != "" || c.FCMEndpoint != "") {
		errs = append(errs, errors.New("FCM_CREDENTIALS_FILE and FCM_ENDPOINT need FCM_PROJECT_ID"))
	}
	if c.FCMProjectID != "" && c.FCMCredentials == "" && c.FCMEndpoint == "" {
		errs = append(errs, errors.New("FCM_PROJECT_ID needs FCM_CREDENTIALS_FILE (or FCM_ENDPOINT for a local emulator)"))
	}
	if c.LinkRenewWait < 0 || c.LinkRenewWait > time.Minute {
		errs = append(errs, errors.New("LINK_RENEW_WAIT must be between 0 and 1m"))
	}
	for i, d := range c.ReminderOffsets {
		if d <= 0 || (i > 0 && d <= c.ReminderOffsets[i-1]) {
			errs = append(errs, errors.New("REMINDER_OFFSETS must be increasing positive durations, e.g. 24h,72h (or off)"))
			break
		}
	}
	if (c.PoderoUsername == "") != (c.PoderoPassword == "") {
		errs = append(errs, errors.New("PODERO_USERNAME and PODERO_PASSWORD must be set together"))
	}
	switch c.PoderoTokenBody {
	case "form", "json", "auto":
	default:
		errs = append(errs, fmt.Errorf("PODERO_TOKEN_BODY must be form (RFC 6749, what OAuth2 libraries send), json (as Podero's guide posts it) or auto (form, then json when the form is turned away), not %q", c.PoderoTokenBody))
	}
	if c.LinkSecret != "" && len(c.LinkSecret) < MinLinkSecretLen {
		errs = append(errs, fmt.Errorf("LINK_SECRET must be at least %d bytes", MinLinkSecretLen))
	}
	if c.SMTPConns < 1 {
		errs = append(errs, errors.New("SMTP_CONNS must be at least 1"))
	}
	if c.PoderoWorkers < 1 || c.NotifyWorkers < 1 {
		errs = append(errs, errors.New("PODERO_WORKERS and NOTIFY_WORKERS must be at least 1"))
	}
	if c.LinkTTL <= 0 || c.JobTimeout <= 0 {
		errs = append(errs, errors.New("LINK_TTL and JOB_TIMEOUT must be positive"))
	}
	if c.SyncRateShare <= 0 || c.SyncRateShare > 1 {
		errs = append(errs, errors.New("SYNC_RATE_SHARE must be above 0 and at most 1"))
	}
	if c.PoderoRateLimit < 0 || c.PoderoRateBurst < 1 {
		errs = append(errs, errors.New("PODERO_RATE_LIMIT must not be negative and PODERO_RATE_BURST must be at least 1"))
	}
	if c.PoderoTimeout <= 0 || c.BreakerCoolOff <= 0 || c.RetryCap <= 0 || c.ShutdownGrace <= 0 || c.PoderoRateMaxWait < 0 {
		errs = append(errs, errors.New("PODERO_TIMEOUT, PODERO_BREAKER_COOLOFF, RETRY_BACKOFF_CAP and SHUTDOWN_GRACE must be positive, PODERO_RATE_MAX_WAIT not negative"))
	}
	if c.BreakerFailures < 1 || c.MaxAttempts < 1 {
		errs = append(errs, errors.New("PODERO_BREAKER_FAILURES and MAX_ATTEMPTS must be at least 1"))
	}
	for _, org := range c.OrgIDs {
		if !reauth.IsUUID(org) {
			errs = append(errs, fmt.Errorf("PODERO_ORG_IDS: %q is not a UUID", org))
		}
	}
	for name, spec := range map[string]string{"SYNC_SCHEDULE": c.SyncSchedule, "SWEEP_SCHEDULE": c.SweepSchedule} {
		if _, err := Schedule(spec); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	if c.SyncInterval < time.Minute {
		errs = append(errs, errors.New("SYNC_INTERVAL must be at least 1m (each user's devices are listed at most this often)"))
	}
	if c.EventsGiveUpAfter <= 0 {
		errs = append(errs, errors.New("EVENTS_GIVE_UP_AFTER must be positive"))
	}
	if c.RepeatCooldown < 0 {
		errs = append(errs, errors.New("REAUTH_REPEAT_COOLDOWN must not be negative (0 turns it off)"))
	}
	if c.ReauthCooldown < 0 || c.ReauthMaxPerWeek < 1 || c.SweepBatch < 1 || c.SweepBatch > 10000 {
		errs = append(errs, errors.New("REAUTH_COOLDOWN must not be negative, REAUTH_MAX_PER_WEEK at least 1, SWEEP_BATCH 1 to 10000"))
	}
	if c.RescueAfter <= c.JobTimeout {
		errs = append(errs, errors.New("JOB_RESCUE_AFTER must be longer than JOB_TIMEOUT"))
	}
	return c, errors.Join(errs...)
}

// Require reports every named variable that is empty, in one error.
func (c Config) Require(names ...string) error {
	set := map[string]bool{
		"DATABASE_URL":         c.DatabaseURL != "",
		"PODERO_BASE_URL":      c.PoderoBaseURL != "",
		"PODERO_CLIENT_ID":     c.PoderoClientID != "",
		"PODERO_CLIENT_SECRET": c.PoderoClientSecret != "",
		"SMTP_URL":             c.SMTPURL != "",
		"MAIL_FROM":            c.MailFrom != "",
		"PUBLIC_BASE_URL":      c.PublicBaseURL != "",
		"API_TOKENS":           len(c.APITokens) > 0,
		"LINK_SECRET":          c.LinkSecret != "",
	}
	var missing []string
	for _, n := range names {
		if !set[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing required environment variables: %s", strings.Join(missing, ", "))
	}
	return nil
}

// PoderoWorkersFor is PODERO_WORKERS's default at rate calls per second:
// four seconds' worth of calls per process (10 to PoderoWorkersDefault), so
// that the jobs a process holds can be served soon and the rest of a
// backlog waits in river_job, written to once, rather than in workers.
func PoderoWorkersFor(rate float64) int {
	if rate <= 0 {
		return PoderoWorkersDefault
	}
	return min(max(int(math.Ceil(4*rate)), 10), PoderoWorkersDefault)
}

// Vars names every variable Load reads (each also as NAME_FILE).
var Vars = []string{"DATABASE_URL", "PODERO_BASE_URL", "PODERO_TOKEN_URL", "PODERO_CLIENT_ID",
	"PODERO_CLIENT_SECRET", "PODERO_USERNAME", "PODERO_PASSWORD", "PODERO_TOKEN_BODY", "PODERO_LINK_HOSTS",
	"PODERO_RATE_LIMIT", "PODERO_RATE_BURST", "PODERO_RATE_MAX_WAIT", "PODERO_TIMEOUT",
	"PODERO_BREAKER_FAILURES", "PODERO_BREAKER_COOLOFF", "RETRY_BACKOFF_CAP", "MAX_ATTEMPTS",
	"SHUTDOWN_GRACE", "SMTP_URL", "SMTP_CONNS", "TEMPLATES_DIR", "REMINDER_OFFSETS", "LINK_RENEW_WAIT",
	"FCM_PROJECT_ID", "FCM_CREDENTIALS_FILE", "FCM_ENDPOINT", "PUSH_WEBHOOK_URL", "PUSH_WEBHOOK_SECRET",
	"EVENTS_WEBHOOK_URL", "EVENTS_WEBHOOK_SECRET", "EVENTS_GIVE_UP_AFTER",
	"MAIL_FROM", "PUBLIC_BASE_URL", "HTTP_ADDR", "API_TOKENS", "LINK_SECRET", "LINK_TTL",
	"SUCCESS_URL", "CANCEL_URL", "REDIRECT_HOSTS", "PODERO_WORKERS", "NOTIFY_WORKERS", "JOB_TIMEOUT",
	"JOB_RESCUE_AFTER", "LOG_FORMAT", "LOG_LEVEL", "PPROF_ADDR", "PODERO_ORG_IDS", "SYNC_SCHEDULE", "SWEEP_SCHEDULE",
	"SYNC_INTERVAL", "SYNC_RATE_SHARE", "REAUTH_COOLDOWN", "REAUTH_REPEAT_COOLDOWN", "REAUTH_MAX_PER_WEEK", "SWEEP_BATCH"}

// ServeVars are the variables `reauth serve` cannot run without.
var ServeVars = []string{"DATABASE_URL", "PODERO_BASE_URL", "PODERO_CLIENT_ID", "PODERO_CLIENT_SECRET",
	"SMTP_URL", "MAIL_FROM", "PUBLIC_BASE_URL", "API_TOKENS", "LINK_SECRET"}

// LogValue prints the configuration for the startup log, secrets masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("database_url", maskURL(c.DatabaseURL.Reveal())),
		slog.String("podero_base_url", c.PoderoBaseURL),
		slog.String("podero_token_url", c.PoderoTokenURL),
		slog.String("podero_client_id", c.PoderoClientID),
		slog.Any("podero_client_secret", c.PoderoClientSecret),
		slog.String("podero_username", c.PoderoUsername),
		slog.Any("podero_password", c.PoderoPassword),
		slog.String("podero_token_body", c.PoderoTokenBody),
		slog.Any("podero_link_hosts", c.PoderoLinkHosts),
		slog.Float64("podero_rate_limit", c.PoderoRateLimit),
		slog.Int("podero_rate_burst", c.PoderoRateBurst),
		slog.Float64("sync_rate_share", c.SyncRateShare),
		slog.Duration("podero_timeout", c.PoderoTimeout),
		slog.Int("podero_breaker_failures", c.BreakerFailures),
		slog.Duration("podero_breaker_cooloff", c.BreakerCoolOff),
		slog.String("smtp_url", maskURL(c.SMTPURL.Reveal())),
		slog.Int("smtp_conns", c.SMTPConns),
		slog.String("templates_dir", c.TemplatesDir),
		slog.Any("reminder_offsets", c.ReminderOffsets),
		slog.Duration("link_renew_wait", c.LinkRenewWait),
		slog.String("fcm_project_id", c.FCMProjectID),
		slog.String("fcm_endpoint", c.FCMEndpoint),
		slog.String("push_webhook_url", urlHost(c.PushWebhookURL)),
		slog.String("events_webhook_url", urlHost(c.EventsWebhookURL)),
		slog.Duration("events_give_up_after", c.EventsGiveUpAfter),
		slog.String("fcm_credentials_file", c.FCMCredentials),
		slog.String("mail_from", c.MailFrom),
		slog.String("public_base_url", c.PublicBaseURL),
		slog.Any("redirect_hosts", c.RedirectHosts),
		slog.String("http_addr", c.HTTPAddr),
		slog.String("pprof_addr", c.PprofAddr),
		slog.Int("api_tokens", len(c.APITokens)),
		slog.Any("link_secret", c.LinkSecret),
		slog.Duration("link_ttl", c.LinkTTL),
		slog.Int("podero_workers", c.PoderoWorkers),
		slog.Int("notify_workers", c.NotifyWorkers),
		slog.Duration("job_timeout", c.JobTimeout),
		slog.Duration("job_rescue_after", c.RescueAfter),
		slog.Duration("retry_backoff_cap", c.RetryCap),
		slog.Int("max_attempts", c.MaxAttempts),
		slog.Duration("shutdown_grace", c.ShutdownGrace),
		slog.Int("podero_org_ids", len(c.OrgIDs)),
		slog.String("sync_schedule", c.SyncSchedule),
		slog.Duration("sync_interval", c.SyncInterval),
		slog.String("sweep_schedule", c.SweepSchedule),
		slog.Duration("reauth_cooldown", c.ReauthCooldown),
		slog.Duration("reauth_repeat_cooldown", c.RepeatCooldown),
		slog.Int("reauth_max_per_week", c.ReauthMaxPerWeek),
	)
}

// Schedule parses a 5-field cron spec ("*/30 * * * *"); "off" gives nil, no
// schedule.
func Schedule(spec string) (cron.Schedule, error) {
	if spec == "off" {
		return nil, nil
	}
	s, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("%q is not a cron schedule like \"*/30 * * * *\" (or off)", spec)
	}
	return s, nil
}

// maskURL hides the password in a URL (postgres://u:****@h/db); anything
// that is not a URL with a scheme and host (a keyword DSN like "host=db
// password=x") is masked whole.
func maskURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "********"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "****")
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "****")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// env collects parse errors while reading variables.
type env struct {
	getenv func(string) string
	errs   []error
}

// str returns NAME, or the trimmed contents of the file NAME_FILE names.
func (e *env) str(name string) string {
	v := e.getenv(name)
	if f := e.getenv(name + "_FILE"); f != "" {
		if v != "" {
			e.errs = append(e.errs, fmt.Errorf("set %s or %s_FILE, not both", name, name))
			return ""
		}
		b, err := os.ReadFile(f)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s_FILE: cannot read the file", name))
			return ""
		}
		v = string(b)
	}
	return strings.TrimSpace(v)
}

func (e *env) list(name string) []string {
	var out []string
	for _, p := range strings.Split(e.str(name), ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// urlHost is a URL's scheme and host only: its path or query may hold a
// token.
func urlHost(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host + "/…"
}

// durations reads a comma-separated list of durations; "off" is none.
func (e *env) durations(name string, def []time.Duration) []time.Duration {
	v := e.str(name)
	switch v {
	case "":
		return def
	case "off":
		return nil
	}
	var out []time.Duration
	for _, p := range e.list(name) {
		d, err := time.ParseDuration(p)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("%s must be durations like 24h,72h, or off", name))
			return def
		}
		out = append(out, d)
	}
	return out
}

func (e *env) duration(name string, def time.Duration) time.Duration {
	v := e.str(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s must be a duration like 30s, 15m or 24h", name))
		return def
	}
	return d
}

func (e *env) float(name string, def float64) float64 {
	v := e.str(name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s must be a number", name))
		return def
	}
	return f
}

func (e *env) integer(name string, def int) int {
	v := e.str(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s must be a whole number", name))
		return def
	}
	return n
}

// tokens parses API_TOKENS: comma-separated entries "name:scopes:token"
// (scopes joined by +, from enqueue, read, ops, links), "name:token" or a bare
// token (both with scopes enqueue+read; a bare one is named token1, token2,
// ... by position). Tokens hold no ':' or ','. Only hashes are kept.
func (e *env) tokens(name string) []APIToken {
	var out []APIToken
	for i, entry := range e.list(name) {
		parts := strings.Split(entry, ":")
		t := APIToken{Name: fmt.Sprintf("token%d", i+1), Scopes: []string{ScopeEnqueue, ScopeRead}}
		var tok string
		switch len(parts) {
		case 1:
			tok = parts[0]
		case 2:
			t.Name, tok = parts[0], parts[1]
		case 3:
			t.Name, tok = parts[0], parts[2]
			t.Scopes = strings.Split(parts[1], "+")
		default:
			e.errs = append(e.errs, fmt.Errorf("%s entry %d: want name:scopes:token", name, i+1))
			continue
		}
		for _, sc := range t.Scopes {
			if sc != ScopeEnqueue && sc != ScopeRead && sc != ScopeOps && sc != ScopeLinks {
				e.errs = append(e.errs, fmt.Errorf("%s entry %d: unknown scope %q (enqueue, read, ops, links)", name, i+1, sc))
			}
		}
		if t.Name == "" {
			e.errs = append(e.errs, fmt.Errorf("%s entry %d: empty name", name, i+1))
		}
		if len(tok) < 16 {
			e.errs = append(e.errs, fmt.Errorf("%s entry %d: a token must be at least 16 characters", name, i+1))
			continue
		}
		t.Hash = sha256.Sum256([]byte(tok))
		out = append(out, t)
	}
	return out
}
