package podero

import (
	"strings"
	"testing"
	"time"

	"github.com/reauth/reauth"
)

// FuzzParseAuthSession: whatever Podero answers, the client never panics and
// accepts only a complete session whose link is allowed.
func FuzzParseAuthSession(f *testing.F) {
	for _, seed := range []string{
		`{"authentication_url":"https://app.podero.com/connect/1","device_id":"` + testDevice + `","session_id":"` + testSession + `"}`,
		`{"authentication_url":null,"device_id":null,"session_id":null}`,
		`{"authentication_url":"http://evil.example/","session_id":"` + testSession + `"}`,
		`{"authentication_url":"https://app.podero.com@evil.example/","session_id":"` + testSession + `"}`,
		`{"authentication_url":1}`, `[]`, `null`, `{`, ``, `{"session_id":"` + strings.Repeat("a", 5000) + `"}`,
		`{"authentication_url":"https://app.podero.com/connect?s=` + strings.Repeat("a", 200<<10) + `","session_id":"` + testSession + `"}`,
	} {
		f.Add([]byte(seed))
	}
	c, err := New(Config{BaseURL: "https://app.podero.com", ClientID: "id", ClientSecret: "secret"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := c.parseAuthSession(body, 200, testDevice)
		if err != nil {
			if pe, ok := AsError(err); !ok || pe.Kind != KindMalformed {
				t.Fatalf("want a malformed *Error, got %v", err)
			}
			return
		}
		if !reauth.IsUUID(s.SessionID) || s.DeviceID != testDevice || c.checkLink(s.AuthenticationURL) != nil || len(s.AuthenticationURL) > MaxLinkBytes {
			t.Fatalf("accepted a bad session: %+v", s)
		}
	})
}

// FuzzParseRetryAfter: any header value parses to a non-negative wait or is
// rejected, without panicking.
func FuzzParseRetryAfter(f *testing.F) {
	for _, seed := range []string{"0", "120", " 5 ", "-1", "soon", "Sat, 01 Mar 2025 12:00:30 GMT",
		"Saturday, 01-Mar-25 12:01:00 GMT", "Sat Mar  1 12:00:10 2025", "99999999999999999999", "1e9", ""} {
		f.Add(seed)
	}
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := ParseRetryAfter(v, now)
		if d < 0 {
			t.Fatalf("negative wait %v for %q", d, v)
		}
		if !ok && d != 0 {
			t.Fatalf("rejected %q but returned %v", v, d)
		}
	})
}
