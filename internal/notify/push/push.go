// Package push delivers notify Messages as Firebase Cloud Messaging
// notifications (HTTP v1 API) to each of the user's registration tokens.
package push

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/errorutils"
	"firebase.google.com/go/v4/messaging"
	"google.golang.org/api/option"

	"github.com/reauth/reauth/internal/notify"
)

// DefaultTimeout bounds one Send when Config.Timeout is 0.
const DefaultTimeout = 30 * time.Second

// Config configures the push channel.
type Config struct {
	// ProjectID is the Firebase project; "" takes the project_id of the
	// credentials file.
	ProjectID string
	// CredentialsFile is the path of a Google service account JSON key
	// allowed to send with FCM. Required unless Endpoint is set.
	CredentialsFile string
	// Endpoint replaces https://fcm.googleapis.com (tests, fakes): messages
	// are POSTed to Endpoint+"/v1/projects/{ProjectID}/messages:send". With
	// Endpoint and no CredentialsFile, requests carry no Authorization.
	Endpoint string
	// Timeout bounds one Send, all tokens and the SDK's own retries (of 503
	// and network errors, up to about 7 s) included; DefaultTimeout if 0.
	Timeout time.Duration
}

// Push sends push notifications through FCM. It is safe for concurrent use.
type Push struct {
	client  *messaging.Client
	r       *notify.Renderer
	timeout time.Duration
}

// NewPush checks cfg and creates the FCM client; credentials that cannot be
// loaded and a missing project ID fail here, not at the first Send.
func NewPush(cfg Config, r *notify.Renderer) (*Push, error) {
	if r == nil {
		return nil, errors.New("push: needs a renderer")
	}
	if cfg.Timeout < 0 {
		return nil, errors.New("push: timeout must be positive")
	}
	var opts []option.ClientOption
	if cfg.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(strings.TrimRight(cfg.Endpoint, "/")+"/v1"))
	}
	switch {
	case cfg.CredentialsFile != "":
		opts = append(opts, option.WithAuthCredentialsFile(option.ServiceAccount, cfg.CredentialsFile))
	case cfg.Endpoint != "":
		opts = append(opts, option.WithoutAuthentication())
	default:
		return nil, errors.New("push: an FCM credentials file is required")
	}
	ctx := context.Background()
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: cfg.ProjectID}, opts...)
	if err != nil {
		return nil, fmt.Errorf("push: firebase: %w", err)
	}
	client, err := app.Messaging(ctx)
	if err != nil {
		return nil, fmt.Errorf("push: FCM client: %w", err)
	}
	p := &Push{client: client, r: r, timeout: cfg.Timeout}
	if p.timeout == 0 {
		p.timeout = DefaultTimeout
	}
	return p, nil
}

// Name is the channel's name, "push".
func (p *Push) Name() string { return notify.ChannelPush }

// Send renders m's push title and body and sends them to each of m.Tokens,
// one FCM message per token, all with the collapse key m.Key. It returns:
//   - nil when at least one token took the message and none is
//     unregistered (other tokens' temporary failures are not reported: the
//     message is out, and a retry would send it again);
//   - a *notify.RejectedError whose Tokens FCM reported UNREGISTERED (remove
//     them), whenever there are any. Its Delivered says that other tokens
//     took the message (it is sent); otherwise its Permanent (matching
//     notify.ErrPermanent) says that no token failed temporarily, and when
//     one did the error wraps that failure too and is temporary;
//   - an error matching notify.ErrPermanent when no token took the message
//     and none failed temporarily (INVALID_ARGUMENT, SENDER_ID_MISMATCH), when
//     m cannot be rendered or has no key, and (a RejectedError with no
//     Tokens) when m has no tokens at all;
//   - otherwise a temporary error: 5xx, quota, network errors, the timeout,
//     rejected FCM credentials.
func (p *Push) Send(ctx context.Context, m notify.Message) error {
	tokens := distinct(m.Tokens)
	if len(tokens) == 0 {
		return &notify.RejectedError{Channel: notify.ChannelPush, Reason: "no FCM tokens", Permanent: true}
	}
	if m.Key == "" {
		return fmt.Errorf("push: %w: message has no key", notify.ErrPermanent)
	}
	title, body, err := p.r.RenderPush(m)
	if err != nil {
		return fmt.Errorf("push %s: %w: %w", m.Key, notify.ErrPermanent, err)
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()

	var (
		delivered            int
		gone                 []string
		temporary, permanent error // the first of each
	)
	for _, token := range tokens {
		_, err := p.client.Send(ctx, message(m, token, title, body))
		// The SDK's checks are type assertions: classify before wrapping.
		switch {
		case err == nil:
			delivered++
		case messaging.IsUnregistered(err):
			gone = append(gone, token)
		case ctx.Err() != nil:
			temporary = errors.Join(ctx.Err(), err)
		case messaging.IsInvalidArgument(err) || errorutils.IsInvalidArgument(err) || messaging.IsSenderIDMismatch(err):
			if permanent == nil {
				permanent = err
			}
		default:
			if temporary == nil {
				temporary = err
			}
		}
		if ctx.Err() != nil {
			break // the tokens left would fail the same way
		}
	}

	var rejected *notify.RejectedError
	if len(gone) > 0 {
		rejected = &notify.RejectedError{
			Channel: notify.ChannelPush, Tokens: gone, Reason: "UNREGISTERED",
			Delivered: delivered > 0, Permanent: delivered == 0 && temporary == nil,
		}
	}
	var failed error
	switch {
	case delivered > 0:
	case temporary != nil:
		failed = fmt.Errorf("push %s: FCM: %w", m.Key, temporary)
	case permanent != nil:
		failed = fmt.Errorf("push %s: %w: FCM: %w", m.Key, notify.ErrPermanent, permanent)
	}
	switch {
	case rejected == nil:
		return failed
	case failed == nil:
		return rejected
	default:
		return fmt.Errorf("%w; %w", rejected, failed)
	}
}

// message is the FCM message for one token. The collapse key makes a
// repeated Send of the same Key replace, not add to, the notification; the
// time to live ends when the link expires.
func message(m notify.Message, token, title, body string) *messaging.Message {
	msg := &messaging.Message{
		Token:        token,
		Notification: &messaging.Notification{Title: title, Body: body},
		Data:         data(m),
		Android:      &messaging.AndroidConfig{CollapseKey: m.Key, Priority: "high"},
		APNS:         &messaging.APNSConfig{Headers: map[string]string{"apns-collapse-id": apnsCollapseID(m.Key)}},
		Webpush:      &messaging.WebpushConfig{Headers: map[string]string{"Topic": webpushTopic(m.Key)}},
	}
	// No time to live of our own: the link never goes stale for the user
	// (opened after LINK_TTL it makes a fresh session), so a late push is
	// still worth showing; FCM keeps it its default four weeks.
	return msg
}

// data is the FCM data of m: its link and device; for a grouped message
// (one per user and step, BATCH_WINDOW) the first device's, and "devices",
// a JSON list of every device with its own link ([{"device_kind",
// "device_id", "link"}]), for the app to show.
func data(m notify.Message) map[string]string {
	d := map[string]string{"link": m.Link, "key": m.Key, "device_kind": string(m.DeviceKind), "device_id": m.DeviceID}
	if len(m.Devices) > 1 {
		type device struct {
			Kind string `json:"device_kind"`
			ID   string `json:"device_id"`
			Link string `json:"link"`
		}
		list := make([]device, len(m.Devices))
		for i, x := range m.Devices {
			list[i] = device{Kind: string(x.DeviceKind), ID: x.DeviceID, Link: x.Link}
		}
		b, _ := json.Marshal(list) // strings only: cannot fail
		d["devices"] = string(b)
	}
	return d
}

// apnsCollapseID is key when it fits APNs' 64 bytes, else its SHA-256 in hex
// (64 bytes).
func apnsCollapseID(key string) string {
	if len(key) <= 64 {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// webpushTopic is the RFC 8030 Topic for key: at most 32 characters of the
// URL-safe base64 alphabet, so a hash of the key.
func webpushTopic(key string) string {
	sum := sha256.Sum256([]byte(key))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:32]
}

// distinct returns the non-empty tokens, each once, in order.
func distinct(tokens []string) []string {
	var out []string
	seen := make(map[string]bool, len(tokens))
	for _, t := range tokens {
		t = strings.TrimSpace(t)
		if t != "" && !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
}
