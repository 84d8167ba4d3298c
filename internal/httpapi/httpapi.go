// Package httpapi serves the service's HTTP surface: the enqueue and device
// API under /v1 (bearer tokens), the end user's link redirects and callbacks
// under /r, and health, readiness and metrics.
package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/config"
	"github.com/reauth/reauth/internal/link"
	"github.com/reauth/reauth/internal/podero"
	"github.com/reauth/reauth/internal/store"
	"github.com/reauth/reauth/migrations"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 64 << 10

// Config wires the handlers.
type Config struct {
	Pool   *pgxpool.Pool
	River  *river.Client[pgx.Tx]
	Tokens []config.APIToken
	// SuccessURL and CancelURL are the partner's pages after the login when
	// the request named none; a built-in page when empty.
	SuccessURL, CancelURL string
	// Breaker reports the Podero client's circuit breaker for /readyz; nil
	// leaves it out.
	Breaker func() podero.BreakerStatus
	Logger  *slog.Logger
}

// New returns the service's HTTP handler.
func New(cfg Config) http.Handler {
	s := &server{cfg: cfg}
	mux := http.NewServeMux()
	mux.Handle("POST /v1/reauth", s.auth(s.enqueue))
	mux.Handle("GET /v1/devices/{kind}/{id}", s.auth(s.device))
	mux.HandleFunc("GET /r/{token}", s.open)
	mux.HandleFunc("GET /r/{token}/done", s.done)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.ready)
	mux.Handle("GET /metrics", promhttp.Handler())
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: see the README for the API")
	})
	return s.logRequests(mux)
}

type server struct{ cfg Config }

// logRequests logs each request by its route pattern, never its path: paths
// under /r carry link tokens.
func (s *server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		s.cfg.Logger.DebugContext(r.Context(), "http request", slog.String("route", route),
			slog.Int("status", rec.status), slog.Duration("took", time.Since(start)))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

type tokenNameKey struct{}

// auth admits requests with a bearer token from API_TOKENS. Tokens are
// compared by SHA-256 in constant time.
func (s *server) auth(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			sum := sha256.Sum256([]byte(strings.TrimSpace(tok)))
			for _, t := range s.cfg.Tokens {
				if subtle.ConstantTimeCompare(sum[:], t.Hash[:]) == 1 {
					next(w, r.WithContext(context.WithValue(r.Context(), tokenNameKey{}, t.Name)))
					return
				}
			}
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="reauth"`)
		writeError(w, http.StatusUnauthorized, "missing or invalid bearer token")
	})
}

// reauthRequest is the body of POST /v1/reauth.
type reauthRequest struct {
	OrgID      string `json:"org_id"`
	UserID     string `json:"user_id"`
	DeviceKind string `json:"device_kind"`
	DeviceID   string `json:"device_id"`
	Email      string `json:"email"`
	Locale     string `json:"locale"`
	SuccessURL string `json:"success_url"`
	CancelURL  string `json:"cancel_url"`
}

func (s *server) enqueue(w http.ResponseWriter, r *http.Request) {
	var req reauthRequest
	if err := decodeJSON(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	name, _ := r.Context().Value(tokenNameKey{}).(string)
	args := reauth.DeviceArgs{
		OrgID: req.OrgID, UserID: req.UserID, DeviceKind: reauth.DeviceKind(req.DeviceKind), DeviceID: req.DeviceID,
		Email: req.Email, Locale: req.Locale, SuccessURL: req.SuccessURL, CancelURL: req.CancelURL,
		Reason: "api:" + name,
	}.Normalized()
	if err := args.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, strings.ReplaceAll(err.Error(), "\n", "; "))
		return
	}
	res, err := s.cfg.River.Insert(r.Context(), args, nil)
	if err != nil {
		s.cfg.Logger.ErrorContext(r.Context(), "enqueue failed", slog.Any("error", err))
		writeError(w, http.StatusServiceUnavailable, "could not enqueue the request; try again")
		return
	}
	writeJSON(w, http.StatusAccepted, reauth.Result{JobID: res.Job.ID, Duplicate: res.UniqueSkippedAsDuplicate})
}

// decodeJSON reads exactly one JSON object with no unknown fields from a
// body of at most MaxBodyBytes, and says what is wrong otherwise.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return errors.New("Content-Type must be application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &tooBig):
			return fmt.Errorf("body is larger than %d bytes", MaxBodyBytes)
		case errors.Is(err, io.EOF):
			return errors.New("body is empty; expected a JSON object")
		case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
			return errors.New("body is not valid JSON")
		case errors.As(err, &typ):
			return fmt.Errorf("field %q must be a %s", typ.Field, typ.Type)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return fmt.Errorf("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return errors.New("body is not a valid JSON object")
	}
	if dec.More() {
		return errors.New("body must hold a single JSON object")
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
	writeJSON(w, http.StatusOK, v)
}

// open sends the user on to the session's authentication_url. A superseded
// session's link follows to the device's current open session.
func (s *server) open(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.session(w, r)
	if !ok {
		return
	}
	if sess.State == store.SessionSuperseded {
		cur, err := store.OpenSession(r.Context(), s.cfg.Pool, sess.DeviceKind, sess.DeviceID)
		if err == nil {
			sess = cur
		} else if !errors.Is(err, store.ErrNotFound) {
			s.internalError(w, r, err)
			return
		}
	}
	switch sess.State {
	case store.SessionOpen, store.SessionCancelled:
		if err := store.MarkOpened(r.Context(), s.cfg.Pool, sess.ID); err != nil {
			s.internalError(w, r, err)
			return
		}
		http.Redirect(w, r, sess.AuthenticationURL, http.StatusFound)
	case store.SessionCompleted:
		writePage(w, http.StatusOK, "Already connected", "Your device is connected again. There is nothing more to do.")
	default:
		writePage(w, http.StatusGone, "Link no longer valid", "This link has been replaced by a newer one. Please use the link in the most recent message.")
	}
}

// done is where Podero sends the user after the manufacturer login: it
// records the outcome and sends the user on to the partner's page.
func (s *server) done(w http.ResponseWriter, r *http.Request) {
	result := r.URL.Query().Get("result")
	if result != "success" && result != "cancel" {
		writePage(w, http.StatusBadRequest, "Invalid link", "This link is not valid.")
		return
	}
	sess, ok := s.session(w, r)
	if !ok {
		return
	}
	state, target, title, text := store.SessionCompleted, sess.SuccessURL, "Connected", "Your device is connected again. You can close this page."
	if target == "" {
		target = s.cfg.SuccessURL
	}
	if result == "cancel" {
		state, target, title, text = store.SessionCancelled, sess.CancelURL, "Cancelled", "The connection was not renewed. You can use the link in your message again at any time."
		if target == "" {
			target = s.cfg.CancelURL
		}
	}
	finished, err := store.FinishSession(r.Context(), s.cfg.Pool, sess.ID, state)
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	if finished {
		s.cfg.Logger.InfoContext(r.Context(), "session finished", slog.Int64("session", sess.ID), slog.String("state", state))
	}
	if target != "" {
		http.Redirect(w, r, target, http.StatusFound)
		return
	}
	writePage(w, http.StatusOK, title, text)
}

// session finds the session of the request's link token, or answers with a
// page that reveals nothing about whether the token ever existed.
func (s *server) session(w http.ResponseWriter, r *http.Request) (store.Session, bool) {
	token := r.PathValue("token")
	if link.WellFormed(token) {
		sess, err := store.SessionByLinkHash(r.Context(), s.cfg.Pool, link.Hash(token))
		if err == nil {
			return sess, true
		}
		if !errors.Is(err, store.ErrNotFound) {
			s.internalError(w, r, err)
			return store.Session{}, false
		}
	}
	writePage(w, http.StatusNotFound, "Link not valid", "This link is not valid. Please use the link in the most recent message.")
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
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "podero": detail})
}

func (s *server) internalError(w http.ResponseWriter, r *http.Request, err error) {
	s.cfg.Logger.ErrorContext(r.Context(), "request failed", slog.String("route", r.Pattern), slog.Any("error", err))
	writePage(w, http.StatusInternalServerError, "Something went wrong", "Please try again in a moment.")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
