package notify

import (
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	texttemplate "text/template"
	"time"

	"github.com/reauth/reauth"
)

// The retry templates: the first message of a fresh link the service sends
// by itself when a login completed through the link did not take (Podero
// still showed the device lapsed VERIFY_TIMEOUT later). A short "that did
// not work, here is a fresh link". They sit beside a locale's other
// templates, named with retryPrefix ("retry_subject.txt.tmpl", ...), see
// the same data, and come all five or none: a locale without them (one an
// operator added) sends the usual first message instead.
const retryPrefix = "retry_"

// retryFiles are the templates a retry set holds, each with retryPrefix.
var retryFiles = []string{fileSubject, fileText, fileHTML, filePushTitle, filePushBody}

// loadRetry loads the retry templates of locale ls from src; nil when the
// locale has none.
func loadRetry(src overlay, ls *localeSet) (*localeSet, error) {
	present := 0
	for _, f := range retryFiles {
		if src.has(ls.name + "/" + retryPrefix + f) {
			present++
		}
	}
	if present == 0 {
		return nil, nil
	}
	if present < len(retryFiles) {
		return nil, fmt.Errorf("the %s templates come all %d or none", retryPrefix, len(retryFiles))
	}
	r := *ls
	r.retry = nil
	read := func(file string) (string, error) {
		b, err := src.readFile(ls.name + "/" + retryPrefix + file)
		return string(b), err
	}
	for _, f := range []struct {
		name string
		t    **texttemplate.Template
	}{{fileSubject, &r.subject}, {fileText, &r.text}, {filePushTitle, &r.pushTitle}, {filePushBody, &r.pushBody}} {
		raw, err := read(f.name)
		if err != nil {
			return nil, err
		}
		if *f.t, err = texttemplate.New(retryPrefix + f.name).Option("missingkey=error").Parse(raw); err != nil {
			return nil, err
		}
	}
	raw, err := read(fileHTML)
	if err != nil {
		return nil, err
	}
	if r.html, err = htmltemplate.New(retryPrefix + fileHTML).Option("missingkey=error").Parse(raw); err != nil {
		return nil, err
	}
	return &r, nil
}

// has reports whether either layer holds the file name.
func (o overlay) has(name string) bool {
	for _, fsys := range []fs.FS{o.over, o.base} {
		if fsys == nil {
			continue
		}
		if _, err := fs.Stat(fsys, name); err == nil || !errors.Is(err, fs.ErrNotExist) {
			return true
		}
	}
	return false
}

// selfTestRetry renders every locale's retry message once per kind, with
// and without an expiry and a device name.
func (r *Renderer) selfTestRetry() error {
	expires := time.Date(2030, time.March, 4, 5, 6, 0, 0, time.UTC)
	for _, name := range r.Locales() {
		for _, kind := range reauth.DeviceKinds {
			for _, exp := range []time.Time{{}, expires} {
				for _, maker := range [][2]string{{}, {"Selftest", "Model With A Rather Long Name 2000"}} {
					m := Message{Locale: name, DeviceKind: kind, Retry: true, ExpiresAt: exp, Link: "https://example.com/r/selftest",
						Manufacturer: maker[0], Model: maker[1]}
					if _, err := r.Render(m); err != nil {
						return err
					}
					if _, _, err := r.RenderPush(m); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}
