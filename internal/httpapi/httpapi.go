// Package httpapi serves the service's HTTP surface: the enqueue and device
// API under /v1 (bearer tokens), the end user's link redirects and callbacks
// under /r, and health, readiness and metrics.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"
	"go.opentelemetry.io/otel/trace"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/hostlist"
	"github.com/reauth/reauth/internal/link"
	"github.com/reauth/reauth/internal/metrics"
	"github.com/reauth/reauth/internal/notify"
	"github.com/reauth/reauth/internal/podero"
	"github.com/reauth/reauth/internal/session"
	"github.com/reauth/reauth/internal/store"
	"github.com/reauth/reauth/internal/strictjson"
	"github.com/reauth/reauth/internal/tracing"
	"github.com/reauth/reauth/migrations"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 64 << 10

// renewWriteMargin is what a link renewal's response gets on top of
// RenewWait to look the session up and write its answer.
const renewWriteMargin = 10 * time.Second

// Config wires the handlers.
type Config struct {
	Pool   *pgxpool.Pool
	River  *river.Client[pgx.Tx]
	Tokens []APIToken
	// SuccessURL and CancelURL are the partner's pages after the login when
	// the request named none; a built-in page when empty.
	SuccessURL, CancelURL string
	// RedirectHosts are the hosts a request's success_url and cancel_url may
	// name; the configured SuccessURL and CancelURL are always allowed.
	RedirectHosts hostlist.List
	// RateLimit is PODERO_RATE_LIMIT, SyncInterval SYNC_INTERVAL and
	// SyncShare SYNC_RATE_SHARE, shown with the budget on /ops.
	RateLimit    float64
	SyncInterval time.Duration
	SyncShare    float64
	// MaxAttempts is what a request's job gets (MAX_ATTEMPTS); 0 means
	// reauth.MaxAttemptsDefault.
	MaxAttempts int
	// RepeatCooldown: a request for a device whose session completed this
	// recently answers a duplicate of that session, unless forced; 0: off.
	RepeatCooldown time.Duration
	// VerifyAfter is how long after a success callback the device is
	// checked at Podero (VERIFY_AFTER); 0: session.VerifyAfterDefault.
	VerifyAfter time.Duration
	// FindUser looks a user up by external_user_id at Podero, so that a
	// request naming an unknown one is refused at once; nil leaves it to
	// the worker.
	FindUser func(ctx context.Context, orgID, externalID string) (podero.User, error)
	// Breaker reports the Podero client's circuit breaker for /readyz; nil
	// leaves it out.
	Breaker func() podero.BreakerStatus
	Metrics *metrics.Metrics // served at /metrics; nil serves an empty registry
	Logger  *slog.Logger
	// RenewWait is how long opening an expired link waits for the fresh
	// session it requests before saying the link will come by email.
	RenewWait time.Duration
	// Events inserts reauth.* event jobs (EVENTS_WEBHOOK_URL is set).
	Events bool
	// Problems reports what the Podero client has seen that an operator
	// must fix (a link host not allowed, a failing token fetch), for
	// /readyz; nil leaves it out.
	Problems func() podero.Problems
	// EmailHealth reports whether the email channel counts as broken, for
	// /readyz; nil leaves it out.
	EmailHealth func() notify.EmailHealth
	// Now is the clock; nil is time.Now. Tests move it.
	Now func() time.Time
	// TracerProvider traces each request in a server span (see startSpan);
	// nil: tracing off.
	TracerProvider trace.TracerProvider
	// Links checks the reminder opt-out tokens of /u/{token} (LINK_SECRET,
	// the worker's signer); nil: every one is not found.
	Links *link.Signer
	// Brand is the partner's identity on the end user's pages (BRAND_NAME,
	// BRAND_LOGO_URL, BRAND_COLOR, SUPPORT_URL, SUPPORT_EMAIL); zero: none.
	Brand notify.Brand
}

func (s *server) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now()
	}
	return time.Now()
}

// New returns the service's HTTP handler. It gives cfg's zero fields their
// defaults and panics on the rest out of range: a programmer's error, as
// internal/config checks what an operator sets.
func New(cfg Config) http.Handler {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		panic(err)
	}
	s := &server{cfg: cfg, sessions: session.Sessions{
		Pool: cfg.Pool, Events: cfg.Events, Now: cfg.Now, Logger: cfg.Logger, Metrics: cfg.Metrics,
		Verify: cfg.River != nil, VerifyAfter: cfg.VerifyAfter,
	}, tracer: tracing.Tracer(cfg.TracerProvider), pages: newPages(cfg.Brand)}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/reauth", s.auth(ScopeEnqueue, s.enqueue))
	mux.Handle("GET /v1/devices/{kind}/{id}", s.auth(ScopeRead, s.device))
	mux.Handle("PUT /v1/contacts/{org_id}/{user_id}", s.auth(ScopeEnqueue, s.putContact))
	mux.Handle("GET /v1/contacts/{org_id}/{user_id}", s.auth(ScopeRead, s.getContact))
	mux.Handle("GET /v1/suppressions/{email}", s.auth(ScopeRead, s.getSuppression))
	mux.Handle("DELETE /v1/suppressions/{email}", s.auth(ScopeEnqueue, s.liftSuppression))
	mux.HandleFunc("GET "+link.Path+"{token}", s.open)
	mux.HandleFunc("GET "+link.Path+"{token}/done", s.done)
	mux.HandleFunc("GET "+link.UnsubscribePath+"{token}", s.unsubscribePage)
	mux.HandleFunc("POST "+link.UnsubscribePath+"{token}", s.unsubscribe)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.ready)
	registry := prometheus.NewRegistry()
	if cfg.Metrics != nil {
		registry = cfg.Metrics.Registry
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: see the README for the API")
	})
	s.mountOps(mux)
	s.mountRiverUI(mux)
	return s.logRequests(mux)
}

type server struct {
	cfg      Config
	sessions session.Sessions // every session transition
	failures failures
	tracer   trace.Tracer // nil: tracing off
	pages    *pages       // the end user's pages, in the brand
}

// logRequests logs each request by its route pattern, never its path (paths
// under /r carry link tokens), with the API token's name; and turns a panic
// into a plain 500, never a stack trace in the response.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		var name string
		ctx, endSpan := s.startSpan(context.WithValue(r.Context(), tokenNameKey{}, &name), r)
		r = r.WithContext(ctx)
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.cfg.Logger.ErrorContext(r.Context(), "handler panicked", slog.String("route", r.Pattern), slog.Any("panic", p))
				writeError(rec, http.StatusInternalServerError, "internal error")
			}
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			attrs := []slog.Attr{slog.String("route", route), slog.Int("status", rec.status), slog.Duration("took", time.Since(start))}
			if name != "" {
				attrs = append(attrs, slog.String("token", name))
			}
			s.cfg.Logger.LogAttrs(r.Context(), slog.LevelDebug, "http request", attrs...)
			if endSpan != nil {
				endSpan(r.Pattern, rec.status, name)
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

// Unwrap lets http.ResponseController reach the connection (a link
// renewal extends its write deadline).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// reauthRequest is the body of POST /v1/reauth.
type reauthRequest struct {
	OrgID          string `json:"org_id"`
	UserID         string `json:"user_id"`
	ExternalUserID string `json:"external_user_id"`
	DeviceKind     string `json:"device_kind"`
	DeviceID       string `json:"device_id"`
	Email          string `json:"email"`
	Locale         string `json:"locale"`
	SuccessURL     string `json:"success_url"`
	CancelURL      string `json:"cancel_url"`
	Force          bool   `json:"force"`
	Immediate      bool   `json:"immediate"`
}

// findUserTimeout bounds the lookup of an external_user_id while the
// request waits; past it the worker looks the user up instead.
const findUserTimeout = 3 * time.Second

func (s *server) enqueue(w http.ResponseWriter, r *http.Request) {
	var req reauthRequest
	if err := decodeJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	name := tokenName(r.Context())
	args, err := reauth.DeviceArgs{
		OrgID: req.OrgID, UserID: req.UserID, ExternalUserID: req.ExternalUserID,
		DeviceKind: reauth.DeviceKind(req.DeviceKind), DeviceID: req.DeviceID,
		Email: req.Email, Locale: req.Locale, SuccessURL: req.SuccessURL, CancelURL: req.CancelURL,
		Reason: "api:" + name, Force: req.Force, Immediate: req.Immediate,
	}.Check(s.cfg.RedirectHosts)
	if err != nil {
		writeError(w, http.StatusBadRequest, strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	if s.answeredRepeat(w, r, args) {
		return
	}
	if args.UserID == "" && s.cfg.FindUser != nil {
		// Ask Podero now, so an unknown ID is said here; when Podero cannot
		// answer soon, the worker asks.
		ctx, cancel := context.WithTimeout(r.Context(), findUserTimeout)
		u, err := s.cfg.FindUser(ctx, args.OrgID, args.ExternalUserID)
		cancel()
		if pe, ok := podero.AsError(err); ok && pe.Kind == podero.KindNotFound {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("external_user_id %q is not a user of organization %s at Podero", args.ExternalUserID, args.OrgID))
			return
		}
		if err == nil && u.DeletedAt == nil {
			args.UserID, args.ExternalUserID = u.ID, ""
		}
	}
	meta, _ := json.Marshal(map[string]string{"api_token": name})
	var res reauth.Result
	err = pgx.BeginFunc(r.Context(), s.cfg.Pool, func(tx pgx.Tx) (err error) {
		res, err = reauth.EnqueueWith(r.Context(), tx, args, reauth.EnqueueOpts{MaxAttempts: s.cfg.MaxAttempts, Metadata: meta})
		return err
	})
	if err != nil {
		s.cfg.Logger.ErrorContext(r.Context(), "enqueue failed", slog.Any("error", err))
		writeError(w, http.StatusServiceUnavailable, "could not enqueue the request; try again")
		return
	}
	if !res.Duplicate {
		s.cfg.Metrics.Funnel(metrics.StepRequested)
	}
	writeJSON(w, http.StatusAccepted, res)
}

// answeredRepeat answers a request for a device whose session completed
// within RepeatCooldown as a duplicate of that session, and reports whether
// it answered (an error too).
func (s *server) answeredRepeat(w http.ResponseWriter, r *http.Request, args reauth.DeviceArgs) bool {
	if s.cfg.RepeatCooldown <= 0 || args.Force {
		return false
	}
	sid, jobID, err := store.RecentCompletion(r.Context(), s.cfg.Pool, args.DeviceKind, args.DeviceID, s.now().Add(-s.cfg.RepeatCooldown))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false
	case err != nil:
		s.internalError(w, r, err)
		return true
	}
	writeJSON(w, http.StatusAccepted, reauth.Result{JobID: jobID, Duplicate: true, SessionID: sid})
	return true
}

// decodeJSON reads exactly one JSON object with no unknown fields from a
// body of at most MaxBodyBytes, and says what is wrong otherwise. Keys are
// matched as strictly as job args (internal/strictjson): spelled exactly
// as the field, once each.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return errors.New("Content-Type must be application/json")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return fmt.Errorf("body is larger than %d bytes", MaxBodyBytes)
	case err != nil:
		return errors.New("body could not be read")
	}
	var se *strictjson.Error
	if err := strictjson.Decode(body, v); errors.As(err, &se) {
		switch se.Problem {
		case strictjson.Empty:
			return errors.New("body is empty; expected a JSON object")
		case strictjson.Syntax:
			return errors.New("body is not valid JSON")
		case strictjson.Invalid:
			return errors.New("body is not a valid JSON object")
		case strictjson.NotObject:
			return fmt.Errorf("body must be a JSON object, not %s", se.Got)
		case strictjson.WrongType:
			return fmt.Errorf("field %q must be a %s", se.Field, se.Want)
		case strictjson.Trailing:
			return errors.New("body must hold a single JSON object")
		}
		return se // an unknown (or differently spelled) key, or one given twice
	}
	return nil
}

func (s *server) device(w http.ResponseWriter, r *http.Request) {
	kind := reauth.DeviceKind(r.PathValue("kind"))
	id := r.PathValue("id")
	if !kind.Valid() {
		writeError(w, http.StatusBadRequest, "device_kind must be one of inverter, electric_vehicle, wallbox")
		return
	}
	if !reauth.IsUUID(id) {
		writeError(w, http.StatusBadRequest, "device_id must be a UUID")
		return
	}
	v, err := store.GetDeviceView(r.Context(), s.cfg.Pool, kind, strings.ToLower(id))
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no such device")
		return
	}
	if err != nil {
		s.cfg.Logger.ErrorContext(r.Context(), "device view failed", slog.Any("error", err))
		writeError(w, http.StatusInternalServerError, "internal error")
		return
	}
	// A live authentication_url is the user's login link: whole only for
	// a token that also has the links scope.
	if !tokenAllows(r.Context(), ScopeLinks) {
		for i := range v.Sessions {
			v.Sessions[i].AuthenticationURL = linkOrigin(v.Sessions[i].AuthenticationURL)
		}
	}
	writeJSON(w, http.StatusOK, v)
}

// linkOrigin shortens an authentication_url to its scheme and host, which
// say where the link goes without being the link: "https://connect.podero.com/…".
func linkOrigin(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "…"
	}
	return u.Scheme + "://" + u.Host + "/…"
}

// prefetch reports whether a request is a browser's or a mail client's
// prefetch or preview rather than the user's own navigation.
func prefetch(r *http.Request) bool {
	for _, h := range []string{"Sec-Purpose", "Purpose", "X-Purpose", "X-Moz"} {
		v := strings.ToLower(r.Header.Get(h))
		if strings.Contains(v, "prefetch") || strings.Contains(v, "prerender") || strings.Contains(v, "preview") {
			return true
		}
	}
	return false
}

// refusePrefetch answers a prefetch of a link without looking at it: a
// prefetch that is not 2xx is thrown away, so the user's own click comes
// here and is the one recorded.
func refusePrefetch(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Vary", "Sec-Purpose, Purpose")
	http.Error(w, "not served to prefetches", http.StatusServiceUnavailable)
}

// open sends the user on to where the link leads (session.Follow): the
// login of the device's newest session, or a page saying it is connected,
// gone or superseded. An expired link gets a fresh session on the spot.
// HEAD (Go's mux routes it here) gets the same answer without recording a
// click or requesting a session; prefetches get nothing.
func (s *server) open(w http.ResponseWriter, r *http.Request) {
	if prefetch(r) {
		refusePrefetch(w)
		return
	}
	sess, ok := s.session(w, r)
	if !ok {
		return
	}
	sess, landing, err := s.sessions.Follow(r.Context(), sess)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	switch landing {
	case session.Expired:
		if r.Method == http.MethodHead {
			s.writePage(w, r, http.StatusOK, pageExpired, &sess)
			return
		}
		s.renew(w, r, sess)
	case session.Login:
		s.redirectTo(w, r, sess)
	case session.Connected:
		s.writePage(w, r, http.StatusOK, pageAlreadyConnected, &sess)
	case session.Gone:
		s.writePage(w, r, http.StatusGone, pageNotFound, &sess)
	default:
		s.writePage(w, r, http.StatusGone, pageSuperseded, &sess)
	}
}

// redirectTo records the click (not a HEAD's) and sends the user to Podero.
func (s *server) redirectTo(w http.ResponseWriter, r *http.Request, sess store.Session) {
	if r.Method != http.MethodHead {
		if err := s.sessions.Open(r.Context(), s.cfg.River, sess); err != nil {
			s.internalError(w, r, err)
			return
		}
	}
	http.Redirect(w, r, sess.AuthenticationURL, http.StatusFound)
}

// renew handles an expired link: while the device still needs it, it
// requests a fresh session (session.Renew), waits up to RenewWait for it
// and sends the user there, or else says the link will come by email.
func (s *server) renew(w http.ResponseWriter, r *http.Request, sess store.Session) {
	// The wait may outlast the server's WriteTimeout (30 s): this response
	// gets a deadline of its own that covers it.
	if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.RenewWait + renewWriteMargin)); err != nil {
		s.cfg.Logger.WarnContext(r.Context(), "cannot extend the write deadline for a link renewal", slog.Any("error", err))
	}
	renewed, err := s.sessions.Renew(r.Context(), s.cfg.River, sess)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if !renewed {
		s.writePage(w, r, http.StatusOK, pageAlreadyConnected, &sess)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RenewWait)
	defer cancel()
	cur, ok, err := s.sessions.AwaitRenewal(ctx, sess)
	switch {
	case err != nil:
		s.internalError(w, r, err)
	case ok:
		s.redirectTo(w, r, cur)
	default:
		s.writePage(w, r, http.StatusOK, pageExpired, &sess)
	}
}

// done is where Podero sends the user after the manufacturer login: it
// records the outcome (session.Finish) and sends the user on to the
// partner's page. Only a GET changes anything: a HEAD gets the same answer
// with nothing recorded, a prefetch nothing.
func (s *server) done(w http.ResponseWriter, r *http.Request) {
	if prefetch(r) {
		refusePrefetch(w)
		return
	}
	result := r.URL.Query().Get("result")
	if result != session.ResultSuccess && result != session.ResultCancel {
		s.writePage(w, r, http.StatusBadRequest, pageInvalidDone, nil)
		return
	}
	sess, ok := s.session(w, r)
	if !ok {
		return
	}
	// The request's own page only while its host is still allowed; else the
	// configured page; else a built-in one.
	target, fallback, page := sess.SuccessURL, s.cfg.SuccessURL, pageConnected
	if result == session.ResultCancel {
		target, fallback, page = sess.CancelURL, s.cfg.CancelURL, pageCancelled
	}
	if target == "" || !s.cfg.RedirectHosts.AllowsString(target) {
		target = fallback
	}
	if r.Method != http.MethodHead {
		if err := s.sessions.Finish(r.Context(), s.cfg.River, sess, result); err != nil {
			s.internalError(w, r, err)
			return
		}
	}
	if target != "" {
		http.Redirect(w, r, target, http.StatusFound)
		return
	}
	s.writePage(w, r, http.StatusOK, page, &sess)
}

// session finds the session of the request's link token, or answers with a
// page that reveals nothing about whether the token ever existed.
func (s *server) session(w http.ResponseWriter, r *http.Request) (store.Session, bool) {
	sess, err := s.sessions.ByToken(r.Context(), r.PathValue("token"))
	switch {
	case err == nil:
		return sess, true
	case !errors.Is(err, store.ErrNotFound):
		s.internalError(w, r, err)
	default:
		s.writePage(w, r, http.StatusNotFound, pageNotFound, nil)
	}
	return store.Session{}, false
}

func (s *server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if err := s.cfg.Pool.Ping(ctx); err != nil {
		writeError(w, http.StatusServiceUnavailable, "database unreachable")
		return
	}
	if err := migrations.Check(ctx, s.cfg.Pool); err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	// Podero being down or throttling does not make this process unready
	// (restarting it would not help); it is reported so operators see it.
	detail := map[string]any{}
	if s.cfg.Breaker != nil {
		b := s.cfg.Breaker()
		detail["breaker"] = b.State
		detail["consecutive_failures"] = b.Failures
		if b.State != "closed" {
			detail["breaker_open_until"] = b.OpenUntil
		}
	}
	if until, err := store.PoderoHold(ctx, s.cfg.Pool); err == nil && !until.IsZero() {
		detail["calls_held_until"] = until
	}
	// Configuration problems do not make the process unready either: a
	// restart would not fix them, the operator must.
	if s.cfg.Problems != nil {
		p := s.cfg.Problems()
		if l := p.LinkRejected; l != nil {
			detail["link_host_rejected"] = map[string]any{"host": l.Host, "at": l.At, "count": l.Count, "hint": l.Hint}
		}
		if t := p.Token; t != nil {
			te := map[string]any{"error": t.Error, "at": t.At, "credentials": t.Credentials}
			if t.Hint != "" {
				te["hint"] = t.Hint
			}
			detail["token_error"] = te
		}
		if u := p.Unexpected; u != nil {
			detail["unexpected_answer"] = map[string]any{"error": u.Error, "op": u.Op, "status": u.Status, "at": u.At, "count": u.Count, "hint": u.Hint}
		}
	}
	body := map[string]any{"status": "ready", "podero": detail}
	// A broken email channel does not make the process unready either.
	if s.cfg.EmailHealth != nil {
		if h := s.cfg.EmailHealth(); h.Broken {
			body["email"] = map[string]any{"broken": true, "since": h.Since, "addresses_refused": h.Addresses,
				"refused": h.Refused, "accepted": h.Accepted, "window": h.Window.String(), "last_refusal": h.LastReason, "last_refusal_at": h.LastAt,
				"hint": "the SMTP server refuses most recipients: check SMTP_URL (credentials), MAIL_FROM and the relay's allow-list; messages are retried and no address is suppressed meanwhile"}
		}
	}
	writeJSON(w, http.StatusOK, body)
}

func (s *server) internalError(w http.ResponseWriter, r *http.Request, err error) {
	s.cfg.Logger.ErrorContext(r.Context(), "request failed", slog.String("route", r.Pattern), slog.Any("error", err))
	s.writePage(w, r, http.StatusInternalServerError, pageError, nil)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
