package webhook

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/reauth/reauth/internal/notify"
)

// TypeLink is the type of the payload that carries a link to the user.
const TypeLink = "reauth.link"

// LinkPayload is the JSON body the webhook channel POSTs: everything the
// partner's push service needs to show the link to the user. Title and Body
// are the push texts in Locale.
type LinkPayload struct {
	Type       string `json:"type"` // TypeLink
	ID         string `json:"id"`   // the message key, also the webhook-id
	OrgID      string `json:"org_id"`
	UserID     string `json:"user_id"`
	DeviceKind string `json:"device_kind"`
	DeviceID   string `json:"device_id"`
	Link       string `json:"link"`
	Step       int    `json:"step"`                 // 0 first message, >= 1 reminder
	Reminder   bool   `json:"reminder"`             // Step >= 1
	ExpiresAt  string `json:"expires_at,omitempty"` // RFC 3339, UTC; absent when unknown
	Locale     string `json:"locale"`               // the locale of Title and Body
	Title      string `json:"title"`
	Body       string `json:"body"`
	// Devices lists every device the message is about, each with its own
	// link: one for a device's message, two or more for a grouped one (one
	// per user and step, BATCH_WINDOW), whose DeviceKind, DeviceID, Link
	// and ExpiresAt above are the first device's.
	Devices []DevicePayload `json:"devices"`
}

// DevicePayload is one device of a LinkPayload.
type DevicePayload struct {
	DeviceKind string `json:"device_kind"`
	DeviceID   string `json:"device_id"`
	Link       string `json:"link"`
	ExpiresAt  string `json:"expires_at,omitempty"` // RFC 3339, UTC; absent when unknown
}

// Channel is the "webhook" notify.Channel: it POSTs a LinkPayload to the
// partner's endpoint with webhook-id = Message.Key, so a retried message
// is recognisably the same. Errors are Sender.Post's, but for an answer
// that is the endpoint's own fault (EndpointFault): that is a temporary
// *notify.RejectedError of Class notify.RefusalSystem, so that the message
// is retried on this channel and reported, not given up for the next
// channel or cancelled. An unusable Message is permanent.
type Channel struct {
	endpoint string
	sender   *Sender
	r        *notify.Renderer
}

// NewChannel checks endpoint (see CheckURL) and returns the channel.
func NewChannel(endpoint string, s *Sender, r *notify.Renderer) (*Channel, error) {
	if s == nil || r == nil {
		return nil, errors.New("webhook: channel needs a sender and a renderer")
	}
	if _, err := CheckURL(endpoint); err != nil {
		return nil, err
	}
	return &Channel{endpoint: endpoint, sender: s, r: r}, nil
}

// Name is the channel's name, "webhook".
func (c *Channel) Name() string { return notify.ChannelWebhook }

// Send renders m's push title and body and POSTs m as a LinkPayload.
func (c *Channel) Send(ctx context.Context, m notify.Message) error {
	title, body, err := c.r.RenderPush(m)
	if err != nil {
		return fmt.Errorf("webhook %s: %w: %w", m.Key, notify.ErrPermanent, err)
	}
	err = c.sender.Post(ctx, c.endpoint, m.Key, payload(m, c.r.ResolveLocale(m.Locale), title, body))
	if rej, ok := notify.AsRejected(err); ok && EndpointFault(rej.Status) {
		fault := *rej
		fault.Permanent, fault.Class = false, notify.RefusalSystem
		return fmt.Errorf("webhook %s: %w", m.Key, &fault)
	}
	return err
}

// payload is the LinkPayload for m with its rendered texts.
func payload(m notify.Message, locale, title, body string) LinkPayload {
	p := LinkPayload{
		Type: TypeLink, ID: m.Key, OrgID: m.OrgID, UserID: m.UserID,
		DeviceKind: string(m.DeviceKind), DeviceID: m.DeviceID, Link: m.Link,
		Step: m.Step, Reminder: m.Step >= 1, Locale: locale, Title: title, Body: body,
	}
	if !m.ExpiresAt.IsZero() {
		p.ExpiresAt = m.ExpiresAt.UTC().Format(time.RFC3339)
	}
	devices := m.Devices
	if len(devices) < 2 {
		devices = []notify.DeviceLink{{DeviceKind: m.DeviceKind, DeviceID: m.DeviceID, Link: m.Link, ExpiresAt: m.ExpiresAt}}
	}
	for _, d := range devices {
		dp := DevicePayload{DeviceKind: string(d.DeviceKind), DeviceID: d.DeviceID, Link: d.Link}
		if !d.ExpiresAt.IsZero() {
			dp.ExpiresAt = d.ExpiresAt.UTC().Format(time.RFC3339)
		}
		p.Devices = append(p.Devices, dp)
	}
	return p
}
