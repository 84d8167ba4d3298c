package notify

import (
	"strings"
	"testing"
	"time"

	"github.com/reauth/reauth"
)

// FuzzRender: any link, locale and step renders without panicking, and the
// HTML never carries markup from the link unescaped.
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
	f.Fuzz(func(t *testing.T, link, locale string, step, kind int) {
		m := Message{Key: "reauth-1-0", To: "user@example.com", Locale: locale, Link: link, Step: step,
			DeviceKind: kinds[((kind%len(kinds))+len(kinds))%len(kinds)], ExpiresAt: time.Unix(1_700_000_000, 0)}
		out, err := r.Render(m)
		if err != nil {
			return
		}
		if strings.Contains(link, "<") && strings.Contains(out.HTML, link) {
			t.Fatalf("link rendered into HTML unescaped: %q", link)
		}
		if strings.ContainsAny(out.Subject, "\r\n") {
			t.Fatalf("subject spans lines: %q", out.Subject)
		}
	})
}
