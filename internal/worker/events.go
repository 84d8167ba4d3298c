package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/reauth/reauth"
	"github.com/reauth/reauth/internal/notify"
)

// EventWorker works reauth_event jobs: it delivers one event to the
// partner's backend. Temporary failures are retried with the usual backoff;
// an endpoint that refuses the event for good (4xx other than 408 and 429)
// cancels the job with its answer.
type EventWorker struct {
	river.WorkerDefaults[reauth.EventArgs]
	cfg Config
}

// eventPayload is the body posted, in the Standard Webhooks shape.
type eventPayload struct {
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	Data      eventData `json:"data"`
}

type eventData struct {
	SessionID  int64             `json:"session_id,omitempty"`
	OrgID      string            `json:"org_id"`
	UserID     string            `json:"user_id"`
	DeviceKind reauth.DeviceKind `json:"device_kind"`
	DeviceID   string            `json:"device_id"`
	Detail     string            `json:"detail,omitempty"`
}

// Work posts the event.
func (w *EventWorker) Work(ctx context.Context, job *river.Job[reauth.EventArgs]) error {
	a := job.Args
	if err := a.Validate(); err != nil {
		return river.JobCancel(fmt.Errorf("invalid job args: %w", err))
	}
	if w.cfg.PostEvent == nil {
		return river.JobCancel(errors.New("events are off (EVENTS_WEBHOOK_URL is not set)"))
	}
	err := w.cfg.PostEvent(ctx, a.ID, eventPayload{Type: a.Type, Timestamp: a.OccurredAt, Data: eventData{
		SessionID: a.SessionID, OrgID: a.OrgID, UserID: a.UserID, DeviceKind: a.DeviceKind, DeviceID: a.DeviceID, Detail: a.Detail,
	}})
	if errors.Is(err, notify.ErrPermanent) {
		return river.JobCancel(fmt.Errorf("the events endpoint refused %s: %w", a.ID, err))
	}
	return err
}
