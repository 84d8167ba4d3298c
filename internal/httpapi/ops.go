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
	"unicode"
	"unicode/utf8"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/podero"
	"github.com/reauth/reauth/internal/store"
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
	"ts":    opsTime,
	"trunc": opsTrunc,
	"actions": func(v opsView, id int64, state string) opsActions {
		return opsActions{ID: id, State: state, CSRF: v.CSRF, Back: v.Back}
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
	for _, name := range []string{"overview", "jobs", "job", "device", "message"} {
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
}

// opsHandler is an ops handler; tok is the signed-in API token.
type opsHandler func(w http.ResponseWriter, r *http.Request, tok APIToken)

type opsPage struct{ s *server }

// mountOps adds the /ops routes when some API token has the ops or ops-read
// scope; without one they do not exist (404).
func (s *server) mountOps(mux *http.ServeMux) {
	if !slices.ContainsFunc(s.cfg.Tokens, opsMayView) {
		return
	}
	o := &opsPage{s: s}
	mux.Handle("GET /ops", o.auth(o.overview))
	mux.Handle("GET /ops/{$}", http.RedirectHandler("/ops", http.StatusMovedPermanently))
	mux.Handle("GET /ops/jobs", o.auth(o.jobs))
	mux.Handle("GET /ops/jobs/{id}", o.auth(o.job))
	mux.Handle("POST /ops/jobs/{id}/retry", o.auth(o.form(o.retry)))
	mux.Handle("POST /ops/jobs/{id}/cancel", o.auth(o.form(o.cancel)))
	mux.Handle("GET /ops/devices", o.auth(o.findDevice))
	mux.Handle("GET /ops/devices/{kind}/{id}", o.auth(o.device))
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
	Budget opsBudget
	Queues []store.OpsQueue
	Funnel []store.OpsFunnel
	Window time.Duration
	Since  time.Time
	Kinds  []reauth.DeviceKind
}

func (o *opsPage) overview(w http.ResponseWriter, r *http.Request, tok APIToken) {
	ctx, cancel := context.WithTimeout(r.Context(), opsQueryTimeout)
	defer cancel()
	v := opsOverview{Window: OpsFunnelWindow, Since: time.Now().Add(-OpsFunnelWindow), Kinds: reauth.DeviceKinds}
	var err error
	if v.Queues, err = store.OpsQueues(ctx, o.s.cfg.Pool); err != nil {
		o.failed(w, r, tok, fmt.Errorf("queues: %w", err))
		return
	}
	if v.Funnel, err = store.OpsFunnelSince(ctx, o.s.cfg.Pool, v.Since); err != nil {
		o.failed(w, r, tok, fmt.Errorf("funnel: %w", err))
		return
	}
	b, err := store.GetBudget(ctx, o.s.cfg.Pool)
	if err != nil {
		o.failed(w, r, tok, fmt.Errorf("budget: %w", err))
		return
	}
	v.Budget = newOpsBudget(b, o.s.cfg.RateLimit)
	st, err := store.GetSyncStatus(ctx, o.s.cfg.Pool, nil, o.s.cfg.SyncInterval)
	if err != nil {
		o.failed(w, r, tok, fmt.Errorf("sync status: %w", err))
		return
	}
	v.Budget.Sync = newOpsSync(st, o.s.cfg.RateLimit*o.s.cfg.SyncShare, o.s.cfg.SyncInterval)
	o.render(w, r, tok, http.StatusOK, "overview", opsView{Title: "Overview", Nav: "overview", Data: v})
}

// opsBudget is the Podero budget as the overview shows it.
type opsBudget struct {
	Purposes []opsRate
	Total    float64
	Limit    float64 // PODERO_RATE_LIMIT; 0: none
	Waiting  int64
	Drain    string // how long the waiting requests take
	Sync     opsSync
}

// opsSync is the device sync's status as the overview shows it.
type opsSync struct {
	store.SyncStatus
	Interval   time.Duration
	LagText    string // "-" when nothing was listed
	Pass       string // at the sync's share of the rate limit
	CurrentRun string // at the sync's current rate
}

func newOpsSync(st store.SyncStatus, shareRate float64, interval time.Duration) opsSync {
	v := opsSync{SyncStatus: st, Interval: interval, LagText: "-", Pass: "no limit", CurrentRun: "no sync calls in the last 10 minutes"}
	if !st.OldestSync.IsZero() {
		v.LagText = st.Lag.Round(time.Second).String()
	}
	if d, ok := st.PassTime(shareRate); ok && shareRate > 0 {
		v.Pass = d.Round(time.Second).String()
		if d > interval {
			v.Pass += " (longer than SYNC_INTERVAL)"
		}
	}
	if r := st.CallsPerSecond(); r > 0 {
		d, _ := st.PassTime(r)
		v.CurrentRun = fmt.Sprintf("%s at the current %.2f calls/s", d.Round(time.Second), r)
	}
	return v
}

type opsRate struct {
	Purpose string
	Rate    float64
}

func newOpsBudget(b store.Budget, limit float64) opsBudget {
	v := opsBudget{Limit: limit, Waiting: b.Waiting, Drain: b.DrainText()}
	for _, p := range podero.Purposes {
		if r, ok := b.Rates[p]; ok {
			v.Purposes = append(v.Purposes, opsRate{p, r})
			v.Total += r
		}
	}
	return v
}

// opsJob is a job as the lists and the detail page show it.
type opsJob struct {
	*rivertype.JobRow
	State      string
	DeviceKind string // set when the args name a valid device
	DeviceID   string
	SessionID  int64 // set for reauth_notify jobs
	LastError  string
	ArgsJSON   string
	MetaJSON   string
}

func newOpsJob(j *rivertype.JobRow) opsJob {
	oj := opsJob{JobRow: j, State: string(j.State)}
	var args struct {
		DeviceKind string `json:"device_kind"`
		DeviceID   string `json:"device_id"`
		SessionID  int64  `json:"session_id"`
	}
	// Args come from other systems too: a malformed one just shows no device.
	if json.Unmarshal(j.EncodedArgs, &args) == nil {
		if reauth.DeviceKind(args.DeviceKind).Valid() && reauth.IsUUID(args.DeviceID) {
			oj.DeviceKind, oj.DeviceID = args.DeviceKind, strings.ToLower(args.DeviceID)
		}
		oj.SessionID = args.SessionID
	}
	if n := len(j.Errors); n > 0 {
		oj.LastError = j.Errors[n-1].Error
	}
	return oj
}

type opsJobList struct {
	Jobs               []opsJob
	State, Kind, Queue string
	States             []rivertype.JobState
	Limit              int
}

func (o *opsPage) jobs(w http.ResponseWriter, r *http.Request, tok APIToken) {
	q := r.URL.Query()
	v := opsJobList{State: q.Get("state"), Kind: strings.TrimSpace(q.Get("kind")), Queue: strings.TrimSpace(q.Get("queue")),
		States: rivertype.JobStates(), Limit: OpsJobsLimit}
	params := river.NewJobListParams().First(OpsJobsLimit).OrderBy(river.JobListOrderByID, river.SortOrderDesc)
	if v.State != "" {
		if !slices.Contains(v.States, rivertype.JobState(v.State)) {
			o.message(w, r, tok, http.StatusBadRequest, "Bad request", "state must be one of "+joinStates(v.States)+".")
			return
		}
		params = params.States(rivertype.JobState(v.State))
	}
	if len(v.Kind) > 200 || len(v.Queue) > 200 || !opsParam(v.Kind) || !opsParam(v.Queue) {
		o.message(w, r, tok, http.StatusBadRequest, "Bad request", "kind and queue must be at most 200 printable characters.")
		return
	}
	if v.Kind != "" {
		params = params.Kinds(v.Kind)
	}
	if v.Queue != "" {
		params = params.Queues(v.Queue)
	}
	ctx, cancel := context.WithTimeout(r.Context(), opsQueryTimeout)
	defer cancel()
	res, err := o.s.cfg.River.JobList(ctx, params)
	if err != nil {
		o.failed(w, r, tok, fmt.Errorf("list jobs: %w", err))
		return
	}
	for _, j := range res.Jobs {
		v.Jobs = append(v.Jobs, newOpsJob(j))
	}
	title := "Jobs"
	if v.State != "" {
		title = "Jobs: " + v.State
	}
	o.render(w, r, tok, http.StatusOK, "jobs", opsView{Title: title, Nav: "jobs:" + v.State, Notice: actionNotice(q), Data: v})
}

// opsParam reports whether a query parameter can go to Postgres as text:
// valid UTF-8 without control characters (a NUL is an error there, not a
// value that matches nothing).
func opsParam(s string) bool {
	return utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0
}

func joinStates(states []rivertype.JobState) string {
	s := make([]string, len(states))
	for i, st := range states {
		s[i] = string(st)
	}
	return strings.Join(s, ", ")
}

func (o *opsPage) job(w http.ResponseWriter, r *http.Request, tok APIToken) {
	id, ok := o.jobID(w, r, tok)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), opsQueryTimeout)
	defer cancel()
	j, err := o.s.cfg.River.JobGet(ctx, id)
	if errors.Is(err, river.ErrNotFound) {
		o.message(w, r, tok, http.StatusNotFound, "Not found", fmt.Sprintf("There is no job %d.", id))
		return
	}
	if err != nil {
		o.failed(w, r, tok, fmt.Errorf("get job: %w", err))
		return
	}
	oj := newOpsJob(j)
	oj.ArgsJSON, oj.MetaJSON = prettyJSON(j.EncodedArgs), prettyJSON(j.Metadata)
	o.render(w, r, tok, http.StatusOK, "job", opsView{Title: fmt.Sprintf("Job %d", id), Nav: "jobs:", Notice: actionNotice(r.URL.Query()), Data: oj})
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

// act retries or cancels a job through River, exactly as `reauth jobs retry`
// and `reauth jobs cancel` do, and sends the browser back to the page the
// form was on (303), which then says what happened.
func (o *opsPage) act(w http.ResponseWriter, r *http.Request, tok APIToken, action string) {
	id, ok := o.jobID(w, r, tok)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), opsQueryTimeout)
	defer cancel()
	var (
		j   *rivertype.JobRow
		err error
	)
	if action == "retry" {
		j, err = o.s.cfg.River.JobRetry(ctx, id)
	} else {
		j, err = o.s.cfg.River.JobCancel(ctx, id)
	}
	switch {
	case errors.Is(err, river.ErrNotFound):
		o.message(w, r, tok, http.StatusNotFound, "Not found", fmt.Sprintf("There is no job %d.", id))
		return
	case errors.Is(store.MapDriverError(err), store.ErrConflict):
		o.message(w, r, tok, http.StatusConflict, "Not retried",
			fmt.Sprintf("Job %d was not retried: another job with the same unique key (for a reauth_device job, the same device) is still waiting or running.", id))
		return
	case err != nil:
		o.failed(w, r, tok, fmt.Errorf("%s job %d: %w", action, id, err))
		return
	}
	o.s.cfg.Logger.InfoContext(r.Context(), "ops: job "+action, slog.Int64("job", id), slog.String("kind", j.Kind),
		slog.String("state", string(j.State)), slog.String("token", tok.Name))
	back, ok := opsLocalURL(r.PostForm.Get("back"), "")
	if !ok {
		back, ok = opsLocalURL(r.Header.Get("Referer"), r.Host)
	}
	if !ok {
		back = &url.URL{Path: "/ops/jobs"}
	}
	q := back.Query()
	q.Set("did", action)
	q.Set("job", strconv.FormatInt(id, 10))
	q.Set("now", string(j.State))
	back.RawQuery, back.Fragment = q.Encode(), ""
	http.Redirect(w, r, back.String(), http.StatusSeeOther)
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
	if err != nil || !slices.Contains(rivertype.JobStates(), state) {
		return ""
	}
	switch {
	case q.Get("did") == "retry" && state == rivertype.JobStateAvailable:
		return fmt.Sprintf("Job %d retried: it is available to run now.", id)
	case q.Get("did") == "retry":
		return fmt.Sprintf("Job %d was left as it is: it is %s.", id, state)
	case q.Get("did") == "cancel" && state == rivertype.JobStateCancelled:
		return fmt.Sprintf("Job %d is cancelled.", id)
	case q.Get("did") == "cancel" && state == rivertype.JobStateRunning:
		return fmt.Sprintf("Job %d is running: it has been asked to stop and will be cancelled if it fails.", id)
	case q.Get("did") == "cancel":
		return fmt.Sprintf("Job %d was left as it is: it is already %s.", id, state)
	}
	return ""
}

// findDevice sends the overview's device form on to the device's page.
func (o *opsPage) findDevice(w http.ResponseWriter, r *http.Request, tok APIToken) {
	kind, id := reauth.DeviceKind(r.URL.Query().Get("kind")), strings.TrimSpace(r.URL.Query().Get("id"))
	if !kind.Valid() || !reauth.IsUUID(id) {
		o.message(w, r, tok, http.StatusBadRequest, "Bad request", "Give a device kind (inverter, electric_vehicle, wallbox) and a device ID (a UUID).")
		return
	}
	http.Redirect(w, r, "/ops/devices/"+string(kind)+"/"+strings.ToLower(id), http.StatusSeeOther)
}

func (o *opsPage) device(w http.ResponseWriter, r *http.Request, tok APIToken) {
	kind, id := reauth.DeviceKind(r.PathValue("kind")), r.PathValue("id")
	if !kind.Valid() || !reauth.IsUUID(id) {
		o.message(w, r, tok, http.StatusBadRequest, "Bad request", "A device is named by its kind (inverter, electric_vehicle, wallbox) and its ID (a UUID).")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), opsQueryTimeout)
	defer cancel()
	v, err := store.GetDeviceView(ctx, o.s.cfg.Pool, kind, strings.ToLower(id))
	if errors.Is(err, store.ErrNotFound) {
		o.message(w, r, tok, http.StatusNotFound, "Not found", "The service knows nothing of this device: no row, no request.")
		return
	}
	if err != nil {
		o.failed(w, r, tok, fmt.Errorf("device view: %w", err))
		return
	}
	o.render(w, r, tok, http.StatusOK, "device", opsView{Title: "Device " + string(kind) + " " + strings.ToLower(id), Nav: "device",
		Notice: actionNotice(r.URL.Query()), Data: v})
}

// opsTime shows a time (or *time.Time) in UTC to the second, "–" when unset.
func opsTime(v any) string {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case *time.Time:
		if x != nil {
			t = *x
		}
	}
	if t.IsZero() {
		return "–"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// opsTrunc shortens s to at most n runes.
func opsTrunc(n int, s string) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
