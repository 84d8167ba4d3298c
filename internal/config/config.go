// Package config reads the service's one typed configuration from the
// environment, validates it once, and prints it with every secret masked.
//
// Every variable may instead be read from a file named by the same variable
// with a _FILE suffix (for example PODERO_CLIENT_SECRET_FILE), the usual way to
// pass Kubernetes and Docker secrets.
//
// Each variable is declared once, in settings: its name, default, parser,
// whether the startup log masks it, and a one-line doc. Load, LogValue,
// Vars, ServeVars and Require all read that table, and a test holds it and
// docs/configuration.md to the same variables and defaults.
package config

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/hostlist"
	"github.com/reauth/reauth/internal/httpapi"
	"github.com/reauth/reauth/internal/link"
	"github.com/reauth/reauth/internal/notify"
	"github.com/reauth/reauth/internal/podero"
	"github.com/reauth/reauth/internal/sendwindow"
	"github.com/reauth/reauth/internal/session"
	"github.com/reauth/reauth/internal/worker"
)

// The defaults are owned by the packages that use them (worker, httpapi,
// notify, podero); settings refers to them. This one belongs to the serve
// command itself.
const (
	// ShutdownGraceDefault is how long running jobs get to finish on
	// SIGTERM (SHUTDOWN_GRACE).
	ShutdownGraceDefault = 20 * time.Second
)

// PoolConns is how many Postgres connections a process opens, unless
// DATABASE_URL sets pool_max_conns. The benchmark's commit ceiling uses the
// same number.
func PoolConns() int { return 10 }

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

// Config is everything the service reads from its environment. Each field
// is read by one entry of settings, which holds its variable's name,
// default and doc.
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
	BatchWindow       time.Duration   // BATCH_WINDOW; one message for a user's devices that need a link within it (0: each its own)
	FCMProjectID      string          // FCM_PROJECT_ID; set to enable push
	FCMCredentials    string          // FCM_CREDENTIALS_FILE; service account JSON
	FCMEndpoint       string          // FCM_ENDPOINT; another FCM HTTP v1 endpoint (tests, emulators)
	PushWebhookURL    string          // PUSH_WEBHOOK_URL; the partner's push service (webhook channel)
	PushWebhookSecret Secret          // PUSH_WEBHOOK_SECRET; whsec_...
	EventsWebhookURL  string          // EVENTS_WEBHOOK_URL; the partner's backend, for reauth.* events
	EventsSecret      Secret          // EVENTS_WEBHOOK_SECRET; whsec_...
	EventsGiveUpAfter time.Duration   // EVENTS_GIVE_UP_AFTER; how long an event is retried while the endpoint answers 401, 403, 404 or a redirect

	// Quiet hours: SEND_WINDOW (when messages go out, in the user's local
	// time; sendwindow.Always: any hour), DEFAULT_TIMEZONE (the zone of a
	// user whose contact and Podero user give none) and
	// SEND_WINDOW_INTERACTIVE (skip|respect: whether the first message
	// answering an interactive request waits for the window too).
	SendWindow            sendwindow.Window
	DefaultTimezone       *time.Location
	SendWindowInteractive string

	PublicBaseURL string // PUBLIC_BASE_URL; where links and callbacks point
	HTTPAddr      string // HTTP_ADDR
	PprofAddr     string // PPROF_ADDR; "" (the default): no profiling endpoint
	APITokens     []httpapi.APIToken
	LinkSecret    Secret        // LINK_SECRET; key that derives link tokens (32+ bytes)
	LinkTTL       time.Duration // LINK_TTL
	SuccessURL    string        // SUCCESS_URL; partner page after a completed login
	RedirectHosts []string      // REDIRECT_HOSTS; hosts a request's success_url/cancel_url may name
	CancelURL     string        // CANCEL_URL; partner page after a cancelled login
	// Brand is BRAND_NAME, BRAND_LOGO_URL, BRAND_COLOR, SUPPORT_URL and
	// SUPPORT_EMAIL: the partner's identity in the messages and pages.
	Brand     notify.Brand
	BrandFile string // BRAND_FILE; the brand settings as JSON, each overridden by its own variable

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
	VerifyAfter      time.Duration // VERIFY_AFTER; how long after a success callback (and how often) the device is checked at Podero
	VerifyTimeout    time.Duration // VERIFY_TIMEOUT; how long after the callback it may stay lapsed before the completion is unverified
	ReauthMaxPerWeek int           // REAUTH_MAX_PER_WEEK; messages per device in seven days at most
	SweepBatch       int           // SWEEP_BATCH; devices per sweep page

	LogFormat string // LOG_FORMAT: text|json; empty picks text on a terminal, json otherwise
	LogLevel  slog.Level
}

// settings is every variable Load reads, in the order
// docs/configuration.md lists them.
var settings = []setting{
	required("all", secretVar("DATABASE_URL", "Postgres URL; may hold a password", func(c *Config) *Secret { return &c.DatabaseURL }, maskURL)),
	required("serve", urlVar("PODERO_BASE_URL", "root of Podero's Partner API", func(c *Config) *string { return &c.PoderoBaseURL })),
	withDef(bind("PODERO_TOKEN_URL", "OAuth2 token URL", "PODERO_BASE_URL/api/partners/v2.0/auth/token",
		func(c *Config) *string { return &c.PoderoTokenURL }, parseStr, func(c *Config) string {
			if c.PoderoBaseURL == "" {
				return ""
			}
			return c.PoderoBaseURL + podero.TokenPath
		}, nonEmpty, slog.StringValue), "PODERO_BASE_URL"+podero.TokenPath),
	required("serve", strVar("PODERO_CLIENT_ID", "OAuth2 client ID", func(c *Config) *string { return &c.PoderoClientID })),
	required("serve", secretVar("PODERO_CLIENT_SECRET", "OAuth2 client secret", func(c *Config) *Secret { return &c.PoderoClientSecret }, nil)),
	strVar("PODERO_USERNAME", "with PODERO_PASSWORD selects the password grant", func(c *Config) *string { return &c.PoderoUsername }),
	secretVar("PODERO_PASSWORD", "the password grant's password", func(c *Config) *Secret { return &c.PoderoPassword }, nil),
	strVarDef("PODERO_TOKEN_BODY", "form|json|auto: how token requests carry their fields", podero.TokenBodyDefault, func(c *Config) *string { return &c.PoderoTokenBody }),
	withDef(listVar("PODERO_LINK_HOSTS", "hosts an authentication_url may point at", func(c *Config) *[]string { return &c.PoderoLinkHosts }),
		strings.Join(podero.LinkHostsDefault, ",")),
	floatVar("PODERO_RATE_LIMIT", "calls per second to Podero, all processes together; 0: no limit", worker.RateLimitDefault, func(c *Config) *float64 { return &c.PoderoRateLimit }),
	bind("PODERO_RATE_BURST", "calls that may go at once after a quiet spell", "1 + PODERO_RATE_LIMIT/10",
		func(c *Config) *int { return &c.PoderoRateBurst }, parseInt, func(c *Config) int { return worker.BurstFor(c.PoderoRateLimit) },
		func(n int) bool { return n != 0 }, func(n int) slog.Value { return slog.IntValue(n) }),
	durVar("PODERO_RATE_MAX_WAIT", "a longer wait for a slot snoozes the job instead", worker.RateMaxWaitDefault, func(c *Config) *time.Duration { return &c.PoderoRateMaxWait }),
	floatVar("SYNC_RATE_SHARE", "the share of the rate the sync takes while requests wait", worker.SyncRateShareDefault, func(c *Config) *float64 { return &c.SyncRateShare }),
	durVar("PODERO_TIMEOUT", "timeout of one request to Podero", podero.RequestTimeoutDefault, func(c *Config) *time.Duration { return &c.PoderoTimeout }),
	intVar("PODERO_BREAKER_FAILURES", "consecutive failures that open the circuit breaker", podero.BreakerFailuresDefault, func(c *Config) *int { return &c.BreakerFailures }),
	durVar("PODERO_BREAKER_COOLOFF", "how long the breaker stays open before one probe", podero.BreakerCoolOffDefault, func(c *Config) *time.Duration { return &c.BreakerCoolOff }),
	required("serve", secretVar("SMTP_URL", "smtp:// or smtps:// URL; may hold a password", func(c *Config) *Secret { return &c.SMTPURL }, maskURL)),
	strVar("TEMPLATES_DIR", "operator overrides of the message templates", func(c *Config) *string { return &c.TemplatesDir }),
	bind("REMINDER_OFFSETS", "when reminders go after the session's creation; off: none", docDurations(worker.ReminderOffsetsDefault),
		func(c *Config) *[]time.Duration { return &c.ReminderOffsets }, parseDurations,
		func(*Config) []time.Duration { return worker.ReminderOffsetsDefault }, func(ds []time.Duration) bool { return len(ds) > 0 },
		func(ds []time.Duration) slog.Value {
			out := make([]string, len(ds))
			for i, d := range ds {
				out[i] = d.String()
			}
			return slog.AnyValue(out)
		}),
	durVar("LINK_RENEW_WAIT", "how long opening an expired link waits for a fresh session", worker.RenewWaitDefault, func(c *Config) *time.Duration { return &c.LinkRenewWait }),
	durVar("BATCH_WINDOW", "one message for a user's devices that need a link within it; 0: each its own, at once", worker.BatchWindowDefault, func(c *Config) *time.Duration { return &c.BatchWindow }),
	bind("SEND_WINDOW", "when messages go out, HH:MM-HH:MM in the user's time zone; off: any hour", sendwindow.WindowDefault,
		func(c *Config) *sendwindow.Window { return &c.SendWindow }, parseWindow,
		func(*Config) sendwindow.Window { return sendwindow.MustParse(sendwindow.WindowDefault) },
		func(sendwindow.Window) bool { return true }, func(w sendwindow.Window) slog.Value { return slog.StringValue(w.String()) }),
	bind("DEFAULT_TIMEZONE", "IANA zone of a user whose contact names none and whose Podero country is unknown", sendwindow.TimezoneDefault,
		func(c *Config) **time.Location { return &c.DefaultTimezone }, parseZone,
		func(*Config) *time.Location { loc, _ := sendwindow.LoadZone(sendwindow.TimezoneDefault); return loc },
		func(l *time.Location) bool { return l != nil }, func(l *time.Location) slog.Value { return slog.StringValue(l.String()) }),
	strVarDef("SEND_WINDOW_INTERACTIVE", "skip or respect: whether the first message answering an interactive request waits for SEND_WINDOW", sendwindow.InteractiveDefault,
		func(c *Config) *string { return &c.SendWindowInteractive }),
	strVar("FCM_PROJECT_ID", "Firebase project; turns push on", func(c *Config) *string { return &c.FCMProjectID }),
	strVar("FCM_CREDENTIALS_FILE", "service account JSON for FCM", func(c *Config) *string { return &c.FCMCredentials }),
	urlVar("FCM_ENDPOINT", "another FCM HTTP v1 endpoint (tests, emulators)", func(c *Config) *string { return &c.FCMEndpoint }),
	hostOnly(strVar("PUSH_WEBHOOK_URL", "the partner's push service; turns the webhook channel on", func(c *Config) *string { return &c.PushWebhookURL })),
	secretVar("PUSH_WEBHOOK_SECRET", "whsec_... key of the push webhook", func(c *Config) *Secret { return &c.PushWebhookSecret }, nil),
	hostOnly(strVar("EVENTS_WEBHOOK_URL", "the partner's backend for reauth.* events; turns events on", func(c *Config) *string { return &c.EventsWebhookURL })),
	secretVar("EVENTS_WEBHOOK_SECRET", "whsec_... key of the events webhook", func(c *Config) *Secret { return &c.EventsSecret }, nil),
	durVar("EVENTS_GIVE_UP_AFTER", "how long an event is retried while the endpoint answers 401, 403, 404 or a redirect", worker.EventsGiveUpAfterDefault, func(c *Config) *time.Duration { return &c.EventsGiveUpAfter }),
	intVar("SMTP_CONNS", "SMTP connections sending at once, per process", notify.DefaultConns, func(c *Config) *int { return &c.SMTPConns }),
	required("serve", strVar("MAIL_FROM", "the sender of every email", func(c *Config) *string { return &c.MailFrom })),
	required("serve", urlVar("PUBLIC_BASE_URL", "where links and callbacks point", func(c *Config) *string { return &c.PublicBaseURL })),
	strVarDef("HTTP_ADDR", "listen address", httpapi.AddrDefault, func(c *Config) *string { return &c.HTTPAddr }),
	strVar("PPROF_ADDR", "where Go's profiler listens; empty: nowhere", func(c *Config) *string { return &c.PprofAddr }),
	required("serve", masked(bind("API_TOKENS", "bearer tokens accepted by /v1, name:scopes:token", "",
		func(c *Config) *[]httpapi.APIToken { return &c.APITokens }, parseTokens, nil,
		func(ts []httpapi.APIToken) bool { return len(ts) > 0 }, countValue[httpapi.APIToken]))),
	required("serve", secretVar("LINK_SECRET", "key that derives link tokens (32+ bytes)", func(c *Config) *Secret { return &c.LinkSecret }, nil)),
	durVar("LINK_TTL", "how long a session's link is offered", worker.LinkTTLDefault, func(c *Config) *time.Duration { return &c.LinkTTL }),
	strVar("SUCCESS_URL", "partner page after a completed login", func(c *Config) *string { return &c.SuccessURL }),
	strVar("CANCEL_URL", "partner page after a cancelled login", func(c *Config) *string { return &c.CancelURL }),
	listVar("REDIRECT_HOSTS", "hosts a request's success_url/cancel_url may name", func(c *Config) *[]string { return &c.RedirectHosts }),
	strVar("BRAND_NAME", "the partner's name in the messages and pages", func(c *Config) *string { return &c.Brand.Name }),
	strVar("BRAND_LOGO_URL", "https URL of the partner's logo", func(c *Config) *string { return &c.Brand.LogoURL }),
	strVarDef("BRAND_COLOR", "#rrggbb of the buttons", notify.BrandColorDefault, func(c *Config) *string { return &c.Brand.Color }),
	strVar("SUPPORT_URL", "https URL of the partner's help page", func(c *Config) *string { return &c.Brand.SupportURL }),
	strVar("SUPPORT_EMAIL", "the partner's support address", func(c *Config) *string { return &c.Brand.SupportEmail }),
	strVar("BRAND_FILE", "the brand settings in a JSON file; each variable set wins", func(c *Config) *string { return &c.BrandFile }),
	bind("PODERO_WORKERS", "concurrent reauth_device jobs per process", "4 × PODERO_RATE_LIMIT, 10 to 100",
		func(c *Config) *int { return &c.PoderoWorkers }, parseInt, func(c *Config) int { return worker.PoderoWorkersFor(c.PoderoRateLimit) },
		func(n int) bool { return n != 0 }, func(n int) slog.Value { return slog.IntValue(n) }),
	intVar("NOTIFY_WORKERS", "concurrent reauth_notify jobs per process", worker.NotifyWorkersDefault, func(c *Config) *int { return &c.NotifyWorkers }),
	durVar("JOB_TIMEOUT", "a job running longer is cancelled", worker.JobTimeoutDefault, func(c *Config) *time.Duration { return &c.JobTimeout }),
	durVar("JOB_RESCUE_AFTER", "a job running longer is deemed abandoned and retried", worker.RescueAfterDefault, func(c *Config) *time.Duration { return &c.RescueAfter }),
	durVar("RETRY_BACKOFF_CAP", "the longest backoff between attempts", worker.RetryCapDefault, func(c *Config) *time.Duration { return &c.RetryCap }),
	intVar("MAX_ATTEMPTS", "attempts before a job is given up (discarded)", worker.MaxAttemptsDefault, func(c *Config) *int { return &c.MaxAttempts }),
	durVar("SHUTDOWN_GRACE", "running jobs get this long to finish on SIGTERM", ShutdownGraceDefault, func(c *Config) *time.Duration { return &c.ShutdownGrace }),
	withShow(listVar("PODERO_ORG_IDS", "organizations the device sync lists", func(c *Config) *[]string { return &c.OrgIDs }),
		func(c *Config) slog.Value { return countValue(c.OrgIDs) }),
	strVarDef("SYNC_SCHEDULE", "when the users lists are refreshed, 5-field cron or off", worker.SyncScheduleDefault, func(c *Config) *string { return &c.SyncSchedule }),
	durVar("SYNC_INTERVAL", "how often at most each user's devices are listed", worker.SyncIntervalDefault, func(c *Config) *time.Duration { return &c.SyncInterval }),
	strVarDef("SWEEP_SCHEDULE", "when the sweep runs, 5-field cron or off", worker.SweepScheduleDefault, func(c *Config) *string { return &c.SweepSchedule }),
	durVar("REAUTH_COOLDOWN", "the sweep skips devices messaged this recently", worker.ReauthCooldownDefault, func(c *Config) *time.Duration { return &c.ReauthCooldown }),
	durVar("REAUTH_REPEAT_COOLDOWN", "a request for a device that completed this recently is a duplicate; 0: off", worker.RepeatCooldownDefault, func(c *Config) *time.Duration { return &c.RepeatCooldown }),
	durVar("VERIFY_AFTER", "how long after a success callback, and then how often, the device is checked at Podero", session.VerifyAfterDefault, func(c *Config) *time.Duration { return &c.VerifyAfter }),
	durVar("VERIFY_TIMEOUT", "how long after the callback a device still lapsed at Podero is checked before the completion is unverified and a fresh link sent", worker.VerifyTimeoutDefault, func(c *Config) *time.Duration { return &c.VerifyTimeout }),
	intVar("REAUTH_MAX_PER_WEEK", "messages per device in seven days at most", worker.MaxPerWeekDefault, func(c *Config) *int { return &c.ReauthMaxPerWeek }),
	intVar("SWEEP_BATCH", "devices per sweep page", worker.SweepBatchDefault, func(c *Config) *int { return &c.SweepBatch }),
	withDef(strVar("LOG_FORMAT", "text or json", func(c *Config) *string { return &c.LogFormat }), "text on a terminal, json otherwise"),
	bind("LOG_LEVEL", "debug, info, warn or error", "info", func(c *Config) *slog.Level { return &c.LogLevel }, parseLevel, nil,
		func(slog.Level) bool { return true }, func(l slog.Level) slog.Value { return slog.StringValue(l.String()) }),
}

// hostOnly shows only a URL's scheme and host: its path or query may hold a
// token.
func hostOnly(s setting) setting {
	show := s.show
	s.show = func(c *Config) slog.Value { return slog.StringValue(urlHost(show(c).String())) }
	s.secret = true
	return s
}

// masked marks a setting whose show already hides its value.
func masked(s setting) setting { s.secret = true; return s }

// Load reads the environment through getenv (os.Getenv in production).
// It checks the format of what is set; Require checks what a command needs.
func Load(getenv func(string) string) (Config, error) {
	e := env{getenv: getenv}
	var c Config
	for _, s := range settings {
		s.load(&e, &c)
	}
	c.loadBrandFile(&e)
	return c, errors.Join(append(e.errs, c.validate()...)...)
}

// validate checks what a variable's parser cannot: ranges, formats and
// variables that go together.
func (c *Config) validate() []error {
	var errs []error
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
	if err := c.Brand.Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := hostlist.Parse(c.RedirectHosts); err != nil {
		errs = append(errs, fmt.Errorf("REDIRECT_HOSTS: %w", err))
	}
	if _, err := hostlist.Parse(c.PoderoLinkHosts); err != nil {
		errs = append(errs, fmt.Errorf("PODERO_LINK_HOSTS: %w", err))
	}
	if c.SMTPURL != "" {
		if u, err := url.Parse(c.SMTPURL.Reveal()); err != nil || (u.Scheme != "smtp" && u.Scheme != "smtps") || u.Host == "" {
			//lint:ignore ST1005 the ... is part of the URL's form
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
	if v := c.SendWindowInteractive; v != sendwindow.InteractiveSkip && v != sendwindow.InteractiveRespect {
		errs = append(errs, errors.New("SEND_WINDOW_INTERACTIVE must be skip or respect"))
	}
	if c.BatchWindow < 0 || c.BatchWindow > time.Hour {
		errs = append(errs, errors.New("BATCH_WINDOW must be between 0 (off) and 1h"))
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
	if c.LinkSecret != "" && len(c.LinkSecret) < link.MinKeyLen {
		errs = append(errs, fmt.Errorf("LINK_SECRET must be at least %d bytes", link.MinKeyLen))
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
	if c.VerifyAfter <= 0 || c.VerifyTimeout < c.VerifyAfter {
		errs = append(errs, errors.New("VERIFY_AFTER must be positive and VERIFY_TIMEOUT at least VERIFY_AFTER"))
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
	return errs
}

// Require reports every named variable that is empty, in one error.
func (c Config) Require(names ...string) error {
	var missing []string
	for _, n := range names {
		if s, ok := lookup(n); !ok || !s.isSet(&c) {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing required environment variables: %s", strings.Join(missing, ", "))
	}
	return nil
}

func lookup(name string) (setting, bool) {
	for _, s := range settings {
		if s.name == name {
			return s, true
		}
	}
	return setting{}, false
}

// Vars names every variable Load reads (each also as NAME_FILE).
var Vars = func() []string {
	out := make([]string, len(settings))
	for i, s := range settings {
		out[i] = s.name
	}
	return out
}()

// ServeVars are the variables `reauth serve` cannot run without.
var ServeVars = func() []string {
	var out []string
	for _, s := range settings {
		if s.needs != "" {
			out = append(out, s.name)
		}
	}
	return out
}()

// LogValue prints the configuration for the startup log, secrets masked:
// every variable, under its name in lower case.
func (c Config) LogValue() slog.Value {
	attrs := make([]slog.Attr, len(settings))
	for i, s := range settings {
		attrs[i] = slog.Attr{Key: strings.ToLower(s.name), Value: s.show(&c)}
	}
	return slog.GroupValue(attrs...)
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

// urlHost is a URL's scheme and host only: its path or query may hold a
// token.
func urlHost(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host + "/…"
}

// tokens parses API_TOKENS: comma-separated entries "name:scopes:token"
// (scopes joined by +, from enqueue, read, ops, ops-read, links),
// "name:token" or a bare token (both with scopes enqueue+read; a bare one is
// named token1, token2, ... by position). Tokens hold no ':' or ','. Only
// hashes are kept.
func parseTokens(name, v string) ([]httpapi.APIToken, error) {
	var out []httpapi.APIToken
	var errs []error
	for i, entry := range splitList(v) {
		parts := strings.Split(entry, ":")
		t := httpapi.APIToken{Name: fmt.Sprintf("token%d", i+1), Scopes: []string{httpapi.ScopeEnqueue, httpapi.ScopeRead}}
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
			errs = append(errs, fmt.Errorf("%s entry %d: want name:scopes:token", name, i+1))
			continue
		}
		for _, sc := range t.Scopes {
			if !slices.Contains(httpapi.Scopes, sc) {
				errs = append(errs, fmt.Errorf("%s entry %d: unknown scope %q (%s)", name, i+1, sc, strings.Join(httpapi.Scopes, ", ")))
			}
		}
		if t.Name == "" {
			errs = append(errs, fmt.Errorf("%s entry %d: empty name", name, i+1))
		}
		if len(tok) < 16 {
			errs = append(errs, fmt.Errorf("%s entry %d: a token must be at least 16 characters", name, i+1))
			continue
		}
		t.Hash = sha256.Sum256([]byte(tok))
		out = append(out, t)
	}
	return out, errors.Join(errs...)
}
