package httpapi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/ops"
)

// The ops page: a server-rendered view of queues, jobs, devices and the
// funnel, with retry and cancel buttons, for operators. It is mounted only
// when some API token has the ops scope. The browser signs in with HTTP Basic
// auth whose password is such a token (the user name is ignored).
//
// Forms that change something are protected against cross-site requests
// twice: the request must come from the page's own origin (Origin, else
// Referer, and Sec-Fetch-Site when sent), and must carry a form token derived
// from the signed-in API token, so it is the same on every replica.

const (
	// OpsJobsLimit is how many jobs /ops/jobs lists, newest first.
	OpsJobsLimit = 100
	// OpsFunnelWindow is the window of the overview's funnel.
	OpsFunnelWindow = 24 * time.Hour
	// opsRealm is the Basic auth realm the browser shows.
	opsRealm = `Basic realm="reauth ops", charset="UTF-8"`
	// opsQueryTimeout bounds each page's database work.
	opsQueryTimeout = 10 * time.Second
	// opsMaxForm bounds a POST body; the forms hold two short fields.
	opsMaxForm = 8 << 10
)

//go:embed opstemplates/*.html
var opsTemplateFS embed.FS

var opsFuncs = template.FuncMap{
	"ts":     ops.FormatTime,
	"trunc":  opsTrunc,
	"pretty": prettyJSON,
	"actions": func(v opsView, id int64, state string) opsActions {
		return opsActions{ID: id, State: state, CSRF: v.CSRF, Back: v.Back, ReadOnly: v.ReadOnly}
	},
	"queueForm": func(v opsView, name string, paused bool) opsQueueForm {
		return opsQueueForm{Name: name, Paused: paused, CSRF: v.CSRF, Back: v.Back, ReadOnly: v.ReadOnly}
	},
	"canRetry": func(state string) bool {
		switch rivertype.JobState(state) {
		case rivertype.JobStateCancelled, rivertype.JobStateDiscarded, rivertype.JobStateRetryable, rivertype.JobStateScheduled:
			return true
		}
		return false
	},
	"canCancel": func(state string) bool {
		switch rivertype.JobState(state) {
		case rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
			rivertype.JobStateRunning, rivertype.JobStateScheduled:
			return true
		}
		return false
	},
}

// opsPages are the page templates, each parsed with the shared layout.
var opsPages = func() map[string]*template.Template {
	layout := template.Must(template.New("layout.html").Funcs(opsFuncs).ParseFS(opsTemplateFS, "opstemplates/layout.html"))
	pages := map[string]*template.Template{}
	for _, name := range []string{"overview", "jobs", "job", "device", "sessions", "message"} {
		t := template.Must(layout.Clone())
		pages[name] = template.Must(t.ParseFS(opsTemplateFS, "opstemplates/"+name+".html"))
	}
	return pages
}()

// opsActions is what the "actions" template (a job's retry and cancel
// buttons) needs.
type opsActions struct {
	ID         int64
	State      string
	CSRF, Back string
	ReadOnly   bool // no buttons: the token may not change anything
}

// opsHandler is an ops handler; tok is the signed-in API token.
type opsHandler func(w http.ResponseWriter, r *http.Request, tok APIToken)

type opsPage struct {
	s    *server
	core *ops.Ops // every read and action (internal/ops)
}

// mountOps adds the /ops routes when some API token has the ops or ops-read
// scope; without one they do not exist (404).
func (s *server) mountOps(mux *http.ServeMux) {
	if !slices.ContainsFunc(s.cfg.Tokens, opsMayView) {
		return
	}
	o := &opsPage{s: s, core: &ops.Ops{Pool: s.cfg.Pool, River: s.cfg.River, RateLimit: s.cfg.RateLimit,
		SyncShare: s.cfg.SyncShare, SyncInterval: s.cfg.SyncInterval, Now: s.cfg.Now}}
	mux.Handle("GET /ops", o.auth(o.overview))
	mux.Handle("GET /ops/{$}", http.RedirectHandler("/ops", http.StatusMovedPermanently))
	mux.Handle("GET /ops/jobs", o.auth(o.jobs))
	mux.Handle("GET /ops/jobs/{id}", o.auth(o.job))
	mux.Handle("POST /ops/jobs/{id}/retry", o.auth(o.form(o.retry)))
	mux.Handle("POST /ops/jobs/{id}/cancel", o.auth(o.form(o.cancel)))
	mux.Handle("GET /ops/devices", o.auth(o.findDevice))
	mux.Handle("GET /ops/devices/{kind}/{id}", o.auth(o.device))
	mux.Handle("GET /ops/sessions", o.auth(o.sessions))
	mux.Handle("POST /ops/queues/{name}/pause", o.auth(o.form(o.pauseQueue)))
	mux.Handle("POST /ops/queues/{name}/resume", o.auth(o.form(o.resumeQueue)))
	mux.Handle("/ops/", o.auth(func(w http.ResponseWriter, r *http.Request, tok APIToken) {
		o.message(w, r, tok, http.StatusNotFound, "Not found", "There is no such ops page.")
	}))
}

// auth admits requests whose Basic auth password is an API token with the ops
// or ops-read scope (opsSignIn). A token without either is asked again (401,
// not 403, so the browser lets the operator enter another one).
func (o *opsPage) auth(next opsHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, res := o.s.opsSignIn(r)
		switch res {
		case opsSignedIn:
			next(w, r, tok)
			return
		case opsTooManyFailures:
			w.Header().Set("Retry-After", "60")
			o.message(w, r, APIToken{}, http.StatusTooManyRequests, "Too many failed attempts",
				"Too many failed sign-ins from this address. Try again in a minute.")
			return
		}
		w.Header().Set("WWW-Authenticate", opsRealm)
		o.message(w, r, APIToken{}, http.StatusUnauthorized, "Sign in", opsSignInText[res])
	})
}

// opsSignInResult is what opsSignIn found.
type opsSignInResult int

const (
	opsSignedIn        opsSignInResult = iota
	opsNoCredentials                   // no Basic auth: how every browser starts
	opsWrongToken                      // the password is no API token
	opsLacksScope                      // a token with neither ops nor ops-read
	opsTooManyFailures                 // the address is over the failed-auth limit
)

// opsSignInText asks for credentials again, saying why.
var opsSignInText = map[opsSignInResult]string{
	opsNoCredentials: "Sign in with an API token that has the ops scope as the password; the user name is ignored.",
	opsWrongToken:    "That is not a valid API token. Sign in with an API token that has the ops scope as the password.",
	opsLacksScope: "This token lacks the " + ScopeOps + " scope (or " + ScopeOpsRead + ", to look only). " +
		"Sign in with an API token that has it.",
}

// opsSignIn authenticates a request to /ops or /riverui: its Basic auth
// password, checked exactly as a bearer token on /v1 is, must be an API
// token that opsMayView. A wrong password counts toward the client
// address's failure limit shared with /v1; only failures are turned away
// (opsTooManyFailures), a valid token never is. Asking without credentials
// is not a failure.
func (s *server) opsSignIn(r *http.Request) (APIToken, opsSignInResult) {
	_, password, ok := r.BasicAuth()
	if !ok {
		return APIToken{}, opsNoCredentials
	}
	tok, ok := s.token(&http.Request{Header: http.Header{"Authorization": {"Bearer " + password}}})
	if !ok {
		if !s.failures.limiter(clientAddr(r)).Allow() {
			return APIToken{}, opsTooManyFailures
		}
		return APIToken{}, opsWrongToken
	}
	if p, ok := r.Context().Value(tokenNameKey{}).(*string); ok {
		*p = tok.Name
	}
	if !opsMayView(tok) {
		return APIToken{}, opsLacksScope
	}
	return tok, opsSignedIn
}

// opsMayView reports whether tok may see /ops and River UI: the ops and
// ops-read scopes may.
func opsMayView(tok APIToken) bool { return tok.Allows(ScopeOps) || tok.Allows(ScopeOpsRead) }

// opsMayChange reports whether tok may change anything through /ops or River
// UI (retry, cancel, delete, pause, resume...): only the ops scope may;
// ops-read looks only. Every state-changing ops handler checks it: o.form
// does for /ops's forms, riverUIGuard for River UI's API.
func opsMayChange(tok APIToken) bool { return tok.Allows(ScopeOps) }

// opsReadOnlyText is the 403 answer to a change asked with ops-read.
const opsReadOnlyText = "This token has the " + ScopeOpsRead + " scope: it may look but not change anything. " +
	"Sign in with a token that has the " + ScopeOps + " scope to do this."

// form guards a POST: a token that opsMayChange, same origin, a form token
// of the signed-in API token, a small url-encoded body. Every /ops action
// goes through it.
func (o *opsPage) form(next opsHandler) opsHandler {
	return func(w http.ResponseWriter, r *http.Request, tok APIToken) {
		if !opsMayChange(tok) {
			o.message(w, r, tok, http.StatusForbidden, "Read-only", opsReadOnlyText)
			return
		}
		if !sameOrigin(r) {
			o.message(w, r, tok, http.StatusForbidden, "Request refused",
				"This form must be sent from the ops page itself (the Origin or Referer header names another site or is missing).")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, opsMaxForm)
		if err := r.ParseForm(); err != nil {
			o.message(w, r, tok, http.StatusBadRequest, "Bad request", "The form could not be read.")
			return
		}
		if !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(opsFormToken(tok))) {
			o.message(w, r, tok, http.StatusForbidden, "Request refused",
				"The form is stale or was not sent from the ops page. Reload the page and try again.")
			return
		}
		next(w, r, tok)
	}
}

// sameOrigin reports whether the request comes from a page of this host:
// Sec-Fetch-Site, when the browser sends it, must say same-origin, and the
// Origin header (else the Referer) must name the request's own host. Behind
// a proxy, the proxy must pass the Host header through.
func sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return false
	}
	src := r.Header.Get("Origin")
	if src == "" {
		src = r.Header.Get("Referer")
	}
	if src == "" || src == "null" {
		return false
	}
	u, err := url.Parse(src)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// opsFormToken is the anti-CSRF form value for a signed-in token: an HMAC
// keyed by the token's hash, which only the server and the token's holder can
// compute. It reveals nothing about the token and is the same on every
// replica and across restarts.
func opsFormToken(tok APIToken) string {
	mac := hmac.New(sha256.New, tok.Hash[:])
	mac.Write([]byte("reauth ops form v1"))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// opsView is what every page template gets.
type opsView struct {
	Title  string
	Nav    string // the nav entry to highlight
	Notice string // a one-line outcome of the last action
	CSRF   string // the form token; empty when not signed in
	Back   string // this page's URL, where an action returns to
	Data   any
	// ReadOnly: the signed-in token may look but not change (ops-read, see
	// opsMayChange); pages leave out the buttons that would get 403.
	ReadOnly bool
}

// render writes page name with the ops page's security headers. The CSP
// allows no script at all, inline styles, and forms posting to this origin
// only; the Referrer-Policy is same-origin (not no-referrer) because with
// no-referrer browsers send "Origin: null" even on same-origin form posts.
func (o *opsPage) render(w http.ResponseWriter, r *http.Request, tok APIToken, status int, name string, v opsView) {
	if tok.Name != "" || tok.Hash != [sha256.Size]byte{} {
		v.CSRF = opsFormToken(tok)
		v.ReadOnly = !opsMayChange(tok)
	}
	v.Back = r.URL.RequestURI()
	var buf bytes.Buffer
	if err := opsPages[name].ExecuteTemplate(&buf, "layout.html", v); err != nil {
		o.s.cfg.Logger.ErrorContext(r.Context(), "ops page failed to render", slog.String("page", name), slog.Any("error", err))
		buf.Reset()
		status = http.StatusInternalServerError
		buf.WriteString("internal error\n")
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// message answers with a page holding one paragraph.
func (o *opsPage) message(w http.ResponseWriter, r *http.Request, tok APIToken, status int, title, text string) {
	o.render(w, r, tok, status, "message", opsView{Title: title, Data: text})
}

// failed logs err and answers with a 500 page.
func (o *opsPage) failed(w http.ResponseWriter, r *http.Request, tok APIToken, err error) {
	o.s.cfg.Logger.ErrorContext(r.Context(), "ops page failed", slog.String("route", r.Pattern), slog.Any("error", err))
	o.message(w, r, tok, http.StatusInternalServerError, "Something went wrong", "The page could not be built; the service log has the details.")
}

type opsOverview struct {
	ops.Stats
	Window time.Duration
	Chart  funnelChart
	Kinds  []reauth.DeviceKind
}

func (o *opsPage) overview(w http.ResponseWriter, r *http.Request, tok APIToken) {
	ctx, cancel := context.WithTimeout(r.Context(), opsQueryTimeout)
	defer cancel()
	st, err := o.core.Stats(ctx, OpsFunnelWindow)
	if err != nil {
		o.failed(w, r, tok, err)
		return
	}
	days, err := o.core.FunnelDays(ctx, OpsChartDays)
	if err != nil {
		o.failed(w, r, tok, err)
		return
	}
	v := opsOverview{Stats: st, Window: OpsFunnelWindow, Chart: newFunnelChart(days), Kinds: reauth.DeviceKinds}
	o.render(w, r, tok, http.StatusOK, "overview", opsView{Title: "Overview", Nav: "overview",
		Notice: queueNotice(r.URL.Query(), st.Queues), Data: v})
}

type opsJobList struct {
	ops.JobPage
	ops.FilterText
	States []rivertype.JobState
	Limit  int
	Next   string // the next page's URL; "" when there is none
}

// jobs lists jobs by the filters River UI lacks: a device (its requests
// and the messages of its sessions) and a time, next to state, kind and
// queue; each job links to its device and to River UI.
func (o *opsPage) jobs(w http.ResponseWriter, r *http.Request, tok APIToken) {
	q := r.URL.Query()
	v := opsJobList{FilterText: ops.FilterText{State: q.Get("state"), Kind: strings.TrimSpace(q.Get("kind")),
		Queue: strings.TrimSpace(q.Get("queue")), Device: strings.TrimSpace(q.Get("device")), Since: strings.TrimSpace(q.Get("since"))},
		States: ops.JobStates, Limit: OpsJobsLimit}
	jf, err := v.FilterText.Parse(o.s.now())
	if err != nil {
		o.message(w, r, tok, http.StatusBadRequest, "Bad request", opsSentence(err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), opsQueryTimeout)
	defer cancel()
	v.JobPage, err = o.core.Jobs(ctx, jf, OpsJobsLimit, q.Get("after"))
	if errors.Is(err, ops.ErrBadCursor) {
		o.message(w, r, tok, http.StatusBadRequest, "Bad request", "after is not a cursor of this list.")
		return
	}
	if err != nil {
		o.failed(w, r, tok, err)
		return
	}
	if v.NextCursor != nil {
		next := url.Values{}
		for k, vs := range q {
			if k != "after" && k != "did" && k != "job" && k != "outcome" && k != "now" {
				next[k] = vs
			}
		}
		next.Set("after", *v.NextCursor)
		v.Next = "/ops/jobs?" + next.Encode()
	}
	title := "Jobs"
	if v.State != "" {
		title = "Jobs: " + v.State
	}
	o.render(w, r, tok, http.StatusOK, "jobs", opsView{Title: title, Nav: "jobs:" + v.State, Notice: actionNotice(q), Data: v})
}

// opsSentence is err's text as a sentence.
func opsSentence(err error) string {
	s := err.Error()
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:] + "."
}

func (o *opsPage) job(w http.ResponseWriter, r *http.Request, tok APIToken) {
	id, ok := o.jobID(w, r, tok)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), opsQueryTimeout)
	defer cancel()
	j, err := o.core.Job(ctx, id)
	if errors.Is(err, ops.ErrNotFound) {
		o.message(w, r, tok, http.StatusNotFound, "Not found", fmt.Sprintf("There is no job %d.", id))
		return
	}
	if err != nil {
		o.failed(w, r, tok, err)
		return
	}
	o.render(w, r, tok, http.StatusOK, "job", opsView{Title: fmt.Sprintf("Job %d", id), Nav: "jobs:", Notice: actionNotice(r.URL.Query()), Data: j})
}

// jobID is the job ID the path names; a path that names none is answered
// 404 here, and ok is false.
func (o *opsPage) jobID(w http.ResponseWriter, r *http.Request, tok APIToken) (id int64, ok bool) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		o.message(w, r, tok, http.StatusNotFound, "Not found", "A job ID is a positive number.")
		return 0, false
	}
	return id, true
}

// prettyJSON indents JSON for a <pre>.
func prettyJSON(b []byte) string {
	var buf bytes.Buffer
	if json.Indent(&buf, b, "", "  ") != nil {
		return string(b)
	}
	return buf.String()
}

func (o *opsPage) retry(w http.ResponseWriter, r *http.Request, tok APIToken) {
	o.act(w, r, tok, "retry")
}

func (o *opsPage) cancel(w http.ResponseWriter, r *http.Request, tok APIToken) {
	o.act(w, r, tok, "cancel")
}

// act retries or cancels a job through internal/ops, the rule `reauth jobs
// retry` and `reauth jobs cancel` follow too (a finished job is not
// cancelled, a running one not retried), and sends the browser back to the
// page the form was on (303), which then says what happened.
func (o *opsPage) act(w http.ResponseWriter, r *http.Request, tok APIToken, action string) {
	id, ok := o.jobID(w, r, tok)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), opsQueryTimeout)
	defer cancel()
	var a ops.Action
	if action == "retry" {
		a = o.core.Retry(ctx, id)
	} else {
		a = o.core.Cancel(ctx, id)
	}
	switch a.Outcome {
	case ops.OutcomeNotFound:
		o.message(w, r, tok, http.StatusNotFound, "Not found", fmt.Sprintf("There is no job %d.", id))
		return
	case ops.OutcomeDuplicate:
		o.message(w, r, tok, http.StatusConflict, "Not retried",
			fmt.Sprintf("Job %d was not retried: another job with the same unique key (for a reauth_device job, the same device) is still waiting or running.", id))
		return
	case ops.OutcomeError:
		o.failed(w, r, tok, fmt.Errorf("%s job %d: %s", action, id, a.Message))
		return
	}
	o.s.cfg.Logger.InfoContext(r.Context(), "ops: job "+action, slog.Int64("job", id), slog.String("outcome", a.Outcome),
		slog.String("state", a.State), slog.String("token", tok.Name))
	back := opsBack(r, "/ops/jobs")
	q := back.Query()
	q.Set("did", action)
	q.Set("job", strconv.FormatInt(id, 10))
	q.Set("outcome", a.Outcome)
	q.Set("now", a.State)
	back.RawQuery, back.Fragment = q.Encode(), ""
	http.Redirect(w, r, back.String(), http.StatusSeeOther)
}

// opsBack is where an action returns to: the form's back field, else the
// Referer, when either is an ops page of this site; else fallback.
func opsBack(r *http.Request, fallback string) *url.URL {
	back, ok := opsLocalURL(r.PostForm.Get("back"), "")
	if !ok {
		back, ok = opsLocalURL(r.Header.Get("Referer"), r.Host)
	}
	if !ok {
		back = &url.URL{Path: fallback}
	}
	return back
}

// opsLocalURL parses s as a path (and query) under /ops, the only places an
// action returns to. An absolute URL is accepted only on host (a Referer of
// this site; host "" refuses every absolute URL) and is reduced to its path
// and query.
func opsLocalURL(s, host string) (*url.URL, bool) {
	if s == "" || strings.Contains(s, `\`) {
		return nil, false
	}
	u, err := url.Parse(s)
	if err != nil || u.User != nil || u.Opaque != "" {
		return nil, false
	}
	if (u.Scheme != "" || u.Host != "") && (host == "" || !strings.EqualFold(u.Host, host)) {
		return nil, false
	}
	p := path.Clean(u.Path)
	if p != "/ops" && !strings.HasPrefix(p, "/ops/") {
		return nil, false
	}
	return &url.URL{Path: p, RawQuery: u.RawQuery}, true
}

// actionNotice says what the last retry or cancel did, from the parameters
// act put on the redirect. It is built from fixed sentences, never from the
// query's text.
func actionNotice(q url.Values) string {
	id, err := strconv.ParseInt(q.Get("job"), 10, 64)
	state := rivertype.JobState(q.Get("now"))
	if err != nil || !slices.Contains(ops.JobStates, state) {
		return ""
	}
	switch q.Get("outcome") {
	case ops.OutcomeRetried:
		if state == rivertype.JobStateAvailable {
			return fmt.Sprintf("Job %d retried: it is available to run now.", id)
		}
		return fmt.Sprintf("Job %d retried: it is %s.", id, state)
	case ops.OutcomeRunning:
		return fmt.Sprintf("Job %d was left as it is: it is running.", id)
	case ops.OutcomeCancelled:
		return fmt.Sprintf("Job %d is cancelled.", id)
	case ops.OutcomeCancelRequested:
		return fmt.Sprintf("Job %d is %s: it has been asked to stop and is cancelled when its worker returns.", id, state)
	case ops.OutcomeAlreadyFinished:
		return fmt.Sprintf("Job %d was left as it is: it is already %s.", id, state)
	}
	return ""
}

// findDevice sends the overview's device form on to the device's page.
func (o *opsPage) findDevice(w http.ResponseWriter, r *http.Request, tok APIToken) {
	kind, id, err := ops.ParseDevice(r.URL.Query().Get("kind"), r.URL.Query().Get("id"))
	if err != nil {
		o.message(w, r, tok, http.StatusBadRequest, "Bad request", "Give a device kind (inverter, electric_vehicle, wallbox) and a device ID (a UUID).")
		return
	}
	http.Redirect(w, r, "/ops/devices/"+string(kind)+"/"+id, http.StatusSeeOther)
}

func (o *opsPage) device(w http.ResponseWriter, r *http.Request, tok APIToken) {
	kind, id, err := ops.ParseDevice(r.PathValue("kind"), r.PathValue("id"))
	if err != nil {
		o.message(w, r, tok, http.StatusBadRequest, "Bad request", "A device is named by its kind (inverter, electric_vehicle, wallbox) and its ID (a UUID).")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), opsQueryTimeout)
	defer cancel()
	v, err := o.core.Device(ctx, kind, id)
	if errors.Is(err, ops.ErrNotFound) {
		o.message(w, r, tok, http.StatusNotFound, "Not found", "The service knows nothing of this device: no row, no request.")
		return
	}
	if err != nil {
		o.failed(w, r, tok, fmt.Errorf("device: %w", err))
		return
	}
	o.render(w, r, tok, http.StatusOK, "device", opsView{Title: "Device " + string(kind) + " " + id, Nav: "device",
		Notice: actionNotice(r.URL.Query()), Data: v})
}

// opsTrunc shortens s to at most n runes.
func opsTrunc(n int, s string) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
