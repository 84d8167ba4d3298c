package notify

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/reauth/reauth"
)

// FuzzRender: any link, locale and step renders without panicking, and the
// HTML never carries markup from the link unescaped. The locale and link
// double as the device's manufacturer and model: a name never carries
// markup into the HTML either, nor lengthens a short subject past
// MaxSubjectRunes.
func FuzzRender(f *testing.F) {
	f.Add("https://reauth.example/r/abc", "en", 0, 0)
	f.Add(`https://x.example/"><script>alert(1)</script>`, "de", 1, 1)
	f.Add("javascript:alert(1)", "xx", 2, 2)
	f.Add("", "", -1, 7)
	r, err := NewRenderer("")
	if err != nil {
		f.Fatal(err)
	}
	kinds := reauth.DeviceKinds
	// The sentinel tag ends every link: whatever comes before it, it must
	// reach the HTML only escaped.
	const sentinel = `"><b id=reauth-sentinel>`
	f.Fuzz(func(t *testing.T, link, locale string, step, kind int) {
		m := Message{Key: "reauth-1-0", To: "user@example.com", Locale: locale, Link: link + sentinel, Step: step,
			DeviceKind: kinds[((kind%len(kinds))+len(kinds))%len(kinds)], ExpiresAt: time.Unix(1_700_000_000, 0)}
		out, err := r.Render(m)
		if err != nil {
			return
		}
		if strings.Contains(out.HTML, "<b id=reauth-sentinel>") {
			t.Fatalf("link markup reached the HTML unescaped: %q", m.Link)
		}
		if strings.Contains(strings.ToLower(out.HTML), `href="javascript:`) {
			t.Fatalf("javascript: link in an href: %q", m.Link)
		}
		if strings.ContainsAny(out.Subject, "\r\n") {
			t.Fatalf("subject spans lines: %q", out.Subject)
		}
		named := m
		named.Manufacturer, named.Model = locale, link+sentinel
		nout, err := r.Render(named)
		if err != nil {
			t.Fatalf("renders without a name but not with one: %v", err)
		}
		if strings.Contains(nout.HTML, "<b id=reauth-sentinel>") {
			t.Fatalf("name markup reached the HTML unescaped: %q", named.Model)
		}
		if strings.ContainsAny(nout.Subject, "\r\n") {
			t.Fatalf("subject spans lines: %q", nout.Subject)
		}
		if utf8.RuneCountInString(out.Subject) <= MaxSubjectRunes && utf8.RuneCountInString(nout.Subject) > MaxSubjectRunes {
			t.Fatalf("the name made the subject too long: %q", nout.Subject)
		}
		title, body, err := r.RenderPush(m)
		if err != nil {
			t.Fatalf("email renders but push does not: %v", err)
		}
		if strings.ContainsAny(title+body, "\r\n") {
			t.Fatalf("push text spans lines: %q %q", title, body)
		}
	})
}
