package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/reauth/reauth/internal/notify"
)

// DefaultTimeout bounds one Post when SenderConfig.Timeout is 0.
const DefaultTimeout = 15 * time.Second

const (
	maxResponse = 4 << 10 // bytes of a response body read
	maxReason   = 300     // bytes of it quoted in an error
	maxIDLen    = 256
)

// SenderConfig configures a Sender.
type SenderConfig struct {
	// Secret is the endpoint's signing secret, "whsec_" + base64 key.
	Secret string
	// Timeout bounds one Post; DefaultTimeout if 0.
	Timeout time.Duration
}

// Sender POSTs signed JSON payloads. It is safe for concurrent use; its
// errors never contain the secret, and name the endpoint by its host only
// (a URL's path or query may hold a token).
type Sender struct {
	signer *Signer
	client *http.Client
	now    func() time.Time
}

// NewSender checks cfg; its errors never contain the secret.
func NewSender(cfg SenderConfig) (*Sender, error) {
	s, err := NewSigner(cfg.Secret)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout < 0 {
		return nil, errors.New("webhook: timeout must be positive")
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	return &Sender{
		signer: s,
		client: &http.Client{
			Timeout:   timeout,
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			// A redirect is answered as is (and counts as a refusal): the
			// signed message goes only where it was configured to go.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		now: time.Now,
	}, nil
}

// Post sends payload, encoded as JSON, to endpoint with the Standard
// Webhooks headers: webhook-id id (use the same id when retrying the same
// message, so the receiver can de-duplicate), webhook-timestamp now and
// webhook-signature. endpoint must be https (http only to a loopback host).
//
// A 2xx answer returns nil. 408, 429, 5xx, timeouts and network errors
// return a temporary error. Any other answer (3xx, which is not followed,
// 4xx such as 400, 401, 404 or 410 Gone) returns a *notify.RejectedError
// whose Status is the answer's and whose Reason names the host, the status
// and the start of the response body, and which matches
// notify.ErrPermanent; so do an unusable endpoint, id or payload.
func (s *Sender) Post(ctx context.Context, endpoint, id string, payload any) error {
	u, err := CheckURL(endpoint)
	if err != nil {
		return fmt.Errorf("%w: %w", notify.ErrPermanent, err)
	}
	if err := checkID(id); err != nil {
		return fmt.Errorf("%w: %w", notify.ErrPermanent, err)
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("webhook %s: %w: payload: %w", id, notify.ErrPermanent, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s: %w: request to %s", id, notify.ErrPermanent, u.Host)
	}
	for k, v := range s.signer.Headers(id, s.now(), body) {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "reauth-webhook/1")

	resp, err := s.client.Do(req)
	if err != nil {
		// *url.Error quotes the whole URL: keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("webhook %s: POST to %s: %w", id, u.Host, err)
	}
	defer resp.Body.Close()
	text, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	reason := resp.Status
	if t := excerpt(text); t != "" {
		reason += ": " + t
	}
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500:
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			reason += " (Retry-After " + excerpt([]byte(ra)) + ")"
		}
		return fmt.Errorf("webhook %s: POST to %s: %s", id, u.Host, reason)
	default:
		if code >= 300 && code < 400 {
			reason += " (redirects are not followed)"
		}
		// No Address: callers suppress a RejectedError's Address as an email
		// address.
		return fmt.Errorf("webhook %s: %w", id, &notify.RejectedError{
			Channel: notify.ChannelWebhook, Reason: u.Host + " answered " + reason, Status: code, Permanent: true,
		})
	}
}

// EndpointFault reports whether an endpoint's HTTP status is one it answers
// while misconfigured or being deployed (401, 403, 404, a redirect: a
// rotated secret, a deploy, a moved URL). Such an answer is about the
// endpoint, never about a user or a message, so it is retried, not taken
// as a refusal.
func EndpointFault(status int) bool {
	switch {
	case status == http.StatusUnauthorized, status == http.StatusForbidden, status == http.StatusNotFound:
		return true
	case status >= 300 && status < 400:
		return true
	}
	return false
}

// CheckURL parses a webhook endpoint: https, or http to a loopback host
// (tests, a local relay), with a host. Its errors do not quote the URL.
func CheckURL(endpoint string) (*url.URL, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, errors.New("webhook: endpoint is not a valid URL")
	}
	if u.Host == "" {
		return nil, errors.New("webhook: endpoint has no host")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && notify.IsLocalHost(u.Hostname()):
	default:
		return nil, fmt.Errorf("webhook: endpoint %s must use https", u.Host)
	}
	return u, nil
}

// checkID: Standard Webhooks signs "id.timestamp.body", so the id has no
// dot; it goes into a header, so no space or control character either.
func checkID(id string) error {
	if id == "" || len(id) > maxIDLen {
		return fmt.Errorf("webhook: id must be 1 to %d bytes", maxIDLen)
	}
	for _, c := range []byte(id) {
		if c <= ' ' || c >= 0x7f || c == '.' {
			return fmt.Errorf("webhook: id %q: only printable ASCII without dots or spaces", id)
		}
	}
	return nil
}

// excerpt is the start of a response body as one line of valid UTF-8.
func excerpt(b []byte) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "\uFFFD")), " ")
	if len(s) <= maxReason {
		return s
	}
	s = s[:maxReason]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
