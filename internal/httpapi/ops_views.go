package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"

	"github.com/reauth/reauth/internal/ops"
)

// OpsSessionsLimit is how many sessions a page of /ops/sessions lists.
const OpsSessionsLimit = 100

// opsQueueForm is what the "queueForm" template (a queue's pause or
// resume button) needs.
type opsQueueForm struct {
	Name       string
	Paused     bool
	CSRF, Back string
	ReadOnly   bool // no button: the token may not change anything
}

func (o *opsPage) pauseQueue(w http.ResponseWriter, r *http.Request, tok APIToken) {
	o.queueAct(w, r, tok, true)
}

func (o *opsPage) resumeQueue(w http.ResponseWriter, r *http.Request, tok APIToken) {
	o.queueAct(w, r, tok, false)
}

// queueAct pauses or resumes a queue through internal/ops (River's
// QueuePause and QueueResume, as `reauth queues pause|resume` do) and sends
// the browser back to the page the form was on (303).
func (o *opsPage) queueAct(w http.ResponseWriter, r *http.Request, tok APIToken, pause bool) {
	name := r.PathValue("name")
	ctx, cancel := context.WithTimeout(r.Context(), opsQueryTimeout)
	defer cancel()
	verb, act := "resume", o.core.ResumeQueue
	if pause {
		verb, act = "pause", o.core.PauseQueue
	}
	err := act(ctx, name)
	if errors.Is(err, ops.ErrNotFound) {
		o.message(w, r, tok, http.StatusNotFound, "Not found",
			"River knows no such queue: it knows a queue once a worker has started on it.")
		return
	}
	if err != nil {
		o.failed(w, r, tok, err)
		return
	}
	o.s.cfg.Logger.InfoContext(r.Context(), "ops: queue "+verb, slog.String("queue", name), slog.String("token", tok.Name))
	back := opsBack(r, "/ops")
	q := back.Query()
	q.Set("queue_did", verb)
	q.Set("queue", name)
	back.RawQuery, back.Fragment = q.Encode(), ""
	http.Redirect(w, r, back.String(), http.StatusSeeOther)
}

// queueNotice says what the last pause or resume did, naming the queue
// only when it is one of queues (never the query's own text).
func queueNotice(q url.Values, queues []ops.Queue) string {
	name := q.Get("queue")
	for _, qu := range queues {
		if qu.Name != name {
			continue
		}
		switch q.Get("queue_did") {
		case "pause":
			return fmt.Sprintf("Queue %s is paused: no worker fetches its jobs until it is resumed; running jobs finish.", qu.Name)
		case "resume":
			return fmt.Sprintf("Queue %s is resumed: workers fetch its jobs again.", qu.Name)
		}
	}
	return ""
}

type opsSessionList struct {
	ops.SessionPage
	State  string
	States []string
	Next   string // the next page's URL; "" when there is none
}

// sessions lists authentication sessions, newest first, as `reauth
// sessions list` does.
func (o *opsPage) sessions(w http.ResponseWriter, r *http.Request, tok APIToken) {
	q := r.URL.Query()
	f := ops.SessionFilter{State: q.Get("state"), Limit: OpsSessionsLimit}
	if a := q.Get("after"); a != "" {
		n, err := strconv.ParseInt(a, 10, 64)
		if err != nil || n <= 0 {
			o.message(w, r, tok, http.StatusBadRequest, "Bad request", "after must be a session ID.")
			return
		}
		f.After = n
	}
	if err := f.Check(); err != nil {
		o.message(w, r, tok, http.StatusBadRequest, "Bad request", opsSentence(err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), opsQueryTimeout)
	defer cancel()
	page, err := o.core.Sessions(ctx, f)
	if err != nil {
		o.failed(w, r, tok, err)
		return
	}
	v := opsSessionList{SessionPage: page, State: f.State, States: ops.SessionStates}
	if page.NextAfter != nil {
		next := url.Values{"after": {strconv.FormatInt(*page.NextAfter, 10)}}
		if f.State != "" {
			next.Set("state", f.State)
		}
		v.Next = "/ops/sessions?" + next.Encode()
	}
	o.render(w, r, tok, http.StatusOK, "sessions", opsView{Title: "Sessions", Nav: "sessions", Data: v})
}
