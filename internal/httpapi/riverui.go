package httpapi

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"riverqueue.com/riverui"
)

// River UI (riverqueue.com/riverui), River's own dashboard of jobs and
// queues, is served at /riverui next to /ops, which keeps the service's own
// views (devices, sessions, funnel, budget). It is mounted with /ops, when
// some API token has the ops or ops-read scope, and signs in the same way:
// HTTP Basic auth with such a token as the password, under the same realm,
// so a browser signed in to one is signed in to the other, and with the same
// failed-auth limit (opsSignIn).
//
// River UI's state-changing API calls (retry, cancel and delete jobs; pause,
// resume and update queues: every method but GET and HEAD) need a token that
// opsMayChange and must come from the page's own origin (sameOrigin, as
// /ops's forms); otherwise 403. River UI sends no form token of ours, so
// the origin check is its CSRF protection.
//
// Its background count cachers (River UI's Handler.Start) are not started:
// without them the job counts are exact up to River UI's bound and
// estimated beyond it, and nothing queries Postgres while no one looks.

// RiverUIPath is where River UI is served.
const RiverUIPath = "/riverui"

// riverUICSP lets River UI's own script and styles run, from this origin
// only. Its bundle loads nothing from elsewhere.
const riverUICSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"

// RiverUIJobPath is a job's page in River UI, for links from /ops.
func RiverUIJobPath(id int64) string { return RiverUIPath + "/jobs/" + strconv.FormatInt(id, 10) }

// mountRiverUI adds River UI under RiverUIPath when some API token has the
// ops or ops-read scope and there is a River client; otherwise the path
// does not exist (404).
func (s *server) mountRiverUI(mux *http.ServeMux) {
	if s.cfg.River == nil || !slices.ContainsFunc(s.cfg.Tokens, opsMayView) {
		return
	}
	h, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(s.cfg.River, nil),
		Logger:    s.cfg.Logger,
		Prefix:    RiverUIPath,
	})
	if err != nil { // only when River UI's embedded files are missing
		panic(fmt.Errorf("httpapi: River UI: %w", err))
	}
	guarded := s.riverUIGuard(h)
	mux.Handle(RiverUIPath, guarded)
	mux.Handle(RiverUIPath+"/", guarded)
}

// riverUIGuard signs requests in (opsSignIn) and lets state-changing ones
// through only with a token that opsMayChange, from the page's own origin.
// Refusals under /riverui/api/ are JSON shaped like River UI's own errors,
// elsewhere an ops page.
func (s *server) riverUIGuard(next http.Handler) http.Handler {
	o := &opsPage{s: s}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		api := r.URL.Path == RiverUIPath+"/api" || strings.HasPrefix(r.URL.Path, RiverUIPath+"/api/")
		refuse := func(status int, title, text string) {
			if api {
				w.Header().Set("Cache-Control", "no-store")
				w.Header().Set("X-Content-Type-Options", "nosniff")
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				_ = json.NewEncoder(w).Encode(map[string]string{"message": text})
				return
			}
			o.message(w, r, APIToken{}, status, title, text)
		}
		tok, res := s.opsSignIn(r)
		switch res {
		case opsSignedIn:
		case opsTooManyFailures:
			w.Header().Set("Retry-After", "60")
			refuse(http.StatusTooManyRequests, "Too many failed attempts",
				"Too many failed sign-ins from this address. Try again in a minute.")
			return
		default:
			w.Header().Set("WWW-Authenticate", opsRealm)
			refuse(http.StatusUnauthorized, "Sign in", opsSignInText[res])
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if !opsMayChange(tok) {
				refuse(http.StatusForbidden, "Read-only", opsReadOnlyText)
				return
			}
			if !sameOrigin(r) {
				refuse(http.StatusForbidden, "Request refused",
					"Changes are accepted only from River UI's own page (the Origin or Referer header names another site or is missing).")
				return
			}
			// The path names the action and at most a queue; job IDs are in the body.
			s.cfg.Logger.InfoContext(r.Context(), "riverui: change", slog.String("method", r.Method),
				slog.String("path", r.URL.Path), slog.String("token", tok.Name))
		}
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", riverUICSP)
		if api {
			h.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}
