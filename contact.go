package reauth

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/reauth/reauth/internal/sendwindow"
)

// Channels are the ways a link reaches a user, in the default order of
// preference.
var Channels = []string{"email", "push", "webhook"}

// Limits on a contact.
const (
	MaxFCMTokens   = 20
	MaxFCMTokenLen = 4096
)

// Contact is how a user is reached (PUT /v1/contacts/{org_id}/{user_id}).
// Every field is optional: an omitted (nil) one keeps what is stored, an
// empty one clears it. A reauthentication request's own email and locale
// win over these; Podero's user email is the last fallback.
type Contact struct {
	Email     *string   `json:"email,omitempty"`
	Locale    *string   `json:"locale,omitempty"`
	Timezone  *string   `json:"timezone,omitempty"`   // IANA zone for quiet hours; none: the Podero user's country's, else DEFAULT_TIMEZONE
	FCMTokens *[]string `json:"fcm_tokens,omitempty"` // Firebase Cloud Messaging registration tokens
	Channels  *[]string `json:"channels,omitempty"`   // in order of preference; default ["email"]
	OptedOut  *[]string `json:"opted_out,omitempty"`  // channels never to use
}

// Normalized trims values, lower-cases channel names and drops repeated
// channels and tokens, keeping order.
func (c Contact) Normalized() Contact {
	if c.Email != nil {
		v := strings.TrimSpace(*c.Email)
		c.Email = &v
	}
	if c.Locale != nil {
		v := strings.ToLower(strings.TrimSpace(*c.Locale))
		c.Locale = &v
	}
	if c.Timezone != nil {
		v := strings.TrimSpace(*c.Timezone)
		c.Timezone = &v
	}
	norm := func(p *[]string, lower bool) *[]string {
		if p == nil {
			return nil
		}
		out := make([]string, 0, len(*p))
		for _, v := range *p {
			v = strings.TrimSpace(v)
			if lower {
				v = strings.ToLower(v)
			}
			if !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
		return &out
	}
	c.FCMTokens = norm(c.FCMTokens, false)
	c.Channels = norm(c.Channels, true)
	c.OptedOut = norm(c.OptedOut, true)
	return c
}

// Validate reports every problem with c (call it on c.Normalized()).
func (c Contact) Validate() error {
	var errs []error
	if c.Email != nil && *c.Email != "" {
		if err := ValidateEmail(*c.Email); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Locale != nil && *c.Locale != "" && !ValidLocale(*c.Locale) {
		errs = append(errs, fmt.Errorf("locale must be one of %s", strings.Join(Locales, ", ")))
	}
	if c.Timezone != nil && *c.Timezone != "" {
		if _, err := sendwindow.LoadZone(*c.Timezone); err != nil {
			errs = append(errs, fmt.Errorf("timezone: %w", err))
		}
	}
	if c.FCMTokens != nil {
		if len(*c.FCMTokens) > MaxFCMTokens {
			errs = append(errs, fmt.Errorf("fcm_tokens: at most %d", MaxFCMTokens))
		}
		for _, t := range *c.FCMTokens {
			if t == "" || len(t) > MaxFCMTokenLen || strings.ContainsFunc(t, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
				errs = append(errs, fmt.Errorf("fcm_tokens: each must be 1 to %d printable characters without spaces", MaxFCMTokenLen))
				break
			}
		}
	}
	for _, f := range []struct {
		name string
		list *[]string
	}{{"channels", c.Channels}, {"opted_out", c.OptedOut}} {
		if f.list == nil {
			continue
		}
		for _, ch := range *f.list {
			if !slices.Contains(Channels, ch) {
				errs = append(errs, fmt.Errorf("%s: unknown channel %q (want %s)", f.name, ch, strings.Join(Channels, ", ")))
			}
		}
	}
	if c.Channels != nil && len(*c.Channels) == 0 {
		errs = append(errs, errors.New("channels must name at least one channel"))
	}
	return errors.Join(errs...)
}
