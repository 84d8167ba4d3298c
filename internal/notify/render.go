// Package notify renders the messages that bring a reauthentication link to
// the end user and delivers them by email (this package), push
// (notify/push) or the partner's webhook (notify/webhook), each a Channel.
// It knows nothing of River, Podero or SQL: callers hand it a Message with a
// stable Key derived from (session, step), and a retried delivery of the
// same Key is recognisably the same message (same Message-ID, collapse key
// or webhook-id).
package notify

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"regexp"
	"slices"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode/utf8"

	// The expiry is shown in each locale's time zone; embed the zone database
	// so that works in minimal container images too.
	_ "time/tzdata"

	"github.com/reauth/reauth"
)

// DefaultLocale is used for an empty or unknown Message.Locale.
const DefaultLocale = "en"

// Template file names inside each locale directory.
const (
	fileSubject = "subject.txt.tmpl"
	fileText    = "body.txt.tmpl"
	fileHTML    = "body.html.tmpl"
	fileLocale  = "locale.json"
	// Push notifications (push and webhook channels).
	filePushTitle = "push_title.txt.tmpl"
	filePushBody  = "push_body.txt.tmpl"
)

//go:embed templates
var embedded embed.FS

// Message is one outbound message about one auth session.
type Message struct {
	// Key is a stable idempotency key derived from (session, step), e.g.
	// "reauth-42-0". Email uses it as the Message-ID "<Key@domain-of-From>"
	// and the X-Reauth-Key header. Letters, digits and "._+=-" only.
	Key        string
	To         string   // email address (email channel)
	Tokens     []string // FCM registration tokens (push channel)
	OrgID      string   // the device's owner and the device (webhook channel's payload)
	UserID     string
	DeviceID   string
	Locale     string // "en", "de", ...; "de-AT" means "de"; unknown or empty means "en"
	DeviceKind reauth.DeviceKind
	// Manufacturer and Model name the device as its user knows it (e.g.
	// "SMA", "Sunny Boy 5.0"), as Podero sent them; "" when unknown.
	// Without a manufacturer the message names the device kind only.
	Manufacturer string
	Model        string
	Link         string    // the URL the user clicks
	Step         int       // 0 first message, >= 1 reminder
	ExpiresAt    time.Time // when the link stops working; zero: not shown
	// Retry: the first message of a fresh link after a login that did not
	// take (see retry.go); it is rendered from the retry_ templates.
	Retry bool
	// Unsubscribe is the reminder opt-out URL (https in production, see
	// link.UnsubscribeURL): email carries it in List-Unsubscribe with
	// List-Unsubscribe-Post (RFC 8058 one-click). "" for the first message,
	// which answers a request and is transactional: no such headers.
	Unsubscribe string
	// Devices are the devices of a grouped message (one per user and step,
	// BATCH_WINDOW), two or more, each with its own link; the device
	// fields above then name the first of them. Nil for one device's
	// message.
	Devices []DeviceLink
}

// Rendered is a message ready to send.
type Rendered struct {
	Subject, Text, HTML string
}

// Renderer renders Messages from per-locale templates. It is safe for
// concurrent use.
type Renderer struct {
	locales map[string]*localeSet
	brand   brandData
}

type localeSet struct {
	name      string
	subject   *texttemplate.Template
	text      *texttemplate.Template
	html      *htmltemplate.Template
	pushTitle *texttemplate.Template
	pushBody  *texttemplate.Template
	retry     *localeSet // the same with the retry_ templates; nil: none (see retry.go)
	kinds     map[reauth.DeviceKind]map[string]string
	named     map[reauth.DeviceKind]map[string]string // forms with "{name}"; may be empty
	layout    string
	months    []string
	zone      *time.Location
	group     *groupSet // nil: the default locale's
}

// localeFile is the JSON form of locale.json.
type localeFile struct {
	TimeZone   string                       `json:"time_zone"`
	DateFormat string                       `json:"date_format"`
	Months     []string                     `json:"months"`
	Kinds      map[string]map[string]string `json:"kinds"`
	NamedKinds map[string]map[string]string `json:"named_kinds"`
}

// templateData is what templates see (documented in templates/README.md).
type templateData struct {
	Link     string
	Device   map[string]string
	Name     string
	Kind     string
	Step     int
	Reminder bool
	Expires  string
	Locale   string
	Subject  string
	Brand    brandData
	// Unsubscribe is Message.Unsubscribe: a reminder's opt-out URL, for a
	// visible link next to the List-Unsubscribe header; "" otherwise.
	Unsubscribe string
}

// brandData is the Brand as templates see it (.Brand.Name, ...), with the
// colours derived from it.
type brandData struct {
	Name, LogoURL, Color, OnColor, LinkColor, SupportURL, SupportEmail string
}

func newBrandData(b Brand) brandData {
	b = b.WithDefaults()
	return brandData{Name: b.Name, LogoURL: b.LogoURL, Color: b.Color, OnColor: b.OnColor(), LinkColor: b.LinkColor(),
		SupportURL: b.SupportURL, SupportEmail: b.SupportEmail}
}

var localeNameRE = regexp.MustCompile(`^[a-z]{2,3}$`)

// NewRenderer loads the embedded templates (templates/<locale>/...). When
// overrideDir is not "", a file at the same relative path there
// (overrideDir/<locale>/<file>) wins over the embedded one, and a complete
// locale directory there adds a locale. Every locale is test-rendered for
// every device kind and step, so a broken template fails here, not at send
// time.
func NewRenderer(overrideDir string) (*Renderer, error) {
	return NewBrandedRenderer(overrideDir, Brand{})
}

// NewBrandedRenderer is NewRenderer for messages in the partner's brand
// (templates see it as .Brand); brand must pass Brand.Validate.
func NewBrandedRenderer(overrideDir string, brand Brand) (*Renderer, error) {
	if err := brand.Validate(); err != nil {
		return nil, fmt.Errorf("notify: brand: %w", err)
	}
	base, err := fs.Sub(embedded, "templates")
	if err != nil {
		return nil, fmt.Errorf("notify: embedded templates: %w", err)
	}
	src := overlay{base: base}
	if overrideDir != "" {
		st, err := os.Stat(overrideDir)
		if err != nil {
			return nil, fmt.Errorf("notify: template override directory: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("notify: template override %q is not a directory", overrideDir)
		}
		src.over = os.DirFS(overrideDir)
	}
	names, err := src.locales()
	if err != nil {
		return nil, err
	}
	r := &Renderer{locales: make(map[string]*localeSet, len(names)), brand: newBrandData(brand)}
	for _, name := range names {
		ls, err := loadLocale(src, name)
		if err != nil {
			return nil, fmt.Errorf("notify: locale %q: %w", name, err)
		}
		r.locales[name] = ls
	}
	if r.locales[DefaultLocale] == nil {
		return nil, fmt.Errorf("notify: the %q templates are missing", DefaultLocale)
	}
	if r.locales[DefaultLocale].group == nil {
		return nil, fmt.Errorf("notify: the %q templates of grouped messages are missing", DefaultLocale)
	}
	if err := r.selfTest(); err != nil {
		return nil, err
	}
	return r, nil
}

// Locales lists the locales the renderer has templates for, sorted.
func (r *Renderer) Locales() []string {
	out := make([]string, 0, len(r.locales))
	for name := range r.locales {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// ResolveLocale returns the locale whose templates render a Message asking
// for requested: requested itself, else its language part ("de" for "de-AT"
// or "de_AT"), else DefaultLocale. Every locale of reauth.Locales without
// templates of its own (today sv, hu, it, et, pl, ro) resolves to "en".
func (r *Renderer) ResolveLocale(requested string) string { return r.locale(requested).name }

// MaxSubjectRunes is the longest subject (and push title) that names the
// device: a longer one names it by its manufacturer alone, then by its
// kind, if that is shorter.
const MaxSubjectRunes = 60

// Render renders m's email in its locale (English when the locale is
// unknown).
func (r *Renderer) Render(m Message) (Rendered, error) {
	if grouped(m) {
		return r.renderGroup(m)
	}
	ls, data, err := r.prepare(m)
	if err != nil {
		return Rendered{}, err
	}
	if data.Subject, err = headline(ls, ls.subject, fileSubject, data, m); err != nil {
		return Rendered{}, err
	}
	var buf bytes.Buffer
	if err := ls.text.Execute(&buf, data); err != nil {
		return Rendered{}, fmt.Errorf("notify: %s/%s: %w", ls.name, fileText, err)
	}
	text := strings.TrimSpace(buf.String()) + "\n"
	buf.Reset()
	if err := ls.html.Execute(&buf, data); err != nil {
		return Rendered{}, fmt.Errorf("notify: %s/%s: %w", ls.name, fileHTML, err)
	}
	return Rendered{Subject: data.Subject, Text: text, HTML: buf.String()}, nil
}

// RenderPush renders m's push notification in its locale (English when the
// locale is unknown): a title and a body, each one line, for the push
// channel and the webhook channel's payload.
func (r *Renderer) RenderPush(m Message) (title, body string, err error) {
	if grouped(m) {
		return r.renderGroupPush(m)
	}
	ls, data, err := r.prepare(m)
	if err != nil {
		return "", "", err
	}
	if title, err = headline(ls, ls.pushTitle, filePushTitle, data, m); err != nil {
		return "", "", err
	}
	if body, err = line(ls, ls.pushBody, filePushBody, data); err != nil {
		return "", "", err
	}
	return title, body, nil
}

// prepare checks m and returns its locale and template data.
func (r *Renderer) prepare(m Message) (*localeSet, templateData, error) {
	if !m.DeviceKind.Valid() {
		return nil, templateData{}, fmt.Errorf("notify: unknown device kind %q", m.DeviceKind)
	}
	if strings.TrimSpace(m.Link) == "" {
		return nil, templateData{}, errors.New("notify: message has no link")
	}
	if m.Step < 0 {
		return nil, templateData{}, fmt.Errorf("notify: negative step %d", m.Step)
	}
	ls := r.locale(m.Locale)
	if m.Retry && ls.retry != nil {
		ls = ls.retry
	}
	name := ls.deviceNames(m)[0]
	return ls, templateData{
		Link:     m.Link,
		Device:   ls.forms(m.DeviceKind, name),
		Name:     name,
		Kind:     string(m.DeviceKind),
		Step:     m.Step,
		Reminder: m.Step >= 1,
		Expires:  ls.formatTime(m.ExpiresAt),
		Locale:   ls.name,
		Brand:    r.brand,

		Unsubscribe: m.Unsubscribe,
	}, nil
}

// line executes a one-line template: white space, line breaks included, is
// collapsed to single spaces, and an empty result is an error.
func line(ls *localeSet, t *texttemplate.Template, file string, data templateData) (string, error) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, data); err != nil {
		return "", fmt.Errorf("notify: %s/%s: %w", ls.name, file, err)
	}
	out := strings.Join(strings.Fields(buf.String()), " ")
	if out == "" {
		return "", fmt.Errorf("notify: %s/%s rendered nothing", ls.name, file)
	}
	return out, nil
}

// headline executes a one-line template that names the device (the subject,
// the push title): with the device's full name while that is at most
// MaxSubjectRunes long, else with a shorter name (the manufacturer alone,
// then none) that is.
func headline(ls *localeSet, t *texttemplate.Template, file string, data templateData, m Message) (string, error) {
	out, err := line(ls, t, file, data)
	for _, name := range ls.deviceNames(m)[1:] {
		if err != nil || utf8.RuneCountInString(out) <= MaxSubjectRunes {
			break
		}
		data.Name, data.Device = name, ls.forms(m.DeviceKind, name)
		out, err = line(ls, t, file, data)
	}
	return out, err
}

// locale picks the templates for a requested locale: exact, then the
// language part of a tag like "de-AT" or "de_AT", then English.
func (r *Renderer) locale(requested string) *localeSet {
	l := strings.ToLower(strings.TrimSpace(requested))
	if ls := r.locales[l]; ls != nil {
		return ls
	}
	if i := strings.IndexAny(l, "-_"); i > 0 {
		if ls := r.locales[l[:i]]; ls != nil {
			return ls
		}
	}
	return r.locales[DefaultLocale]
}

// selfTest renders every locale, kind and step once, email and push.
func (r *Renderer) selfTest() error {
	expires := time.Date(2030, time.March, 4, 5, 6, 0, 0, time.UTC)
	for _, name := range r.Locales() {
		for _, kind := range reauth.DeviceKinds {
			for _, step := range []int{0, 1} {
				for _, exp := range []time.Time{{}, expires} {
					for _, maker := range [][2]string{{}, {"Selftest", "Model With A Rather Long Name 2000"}} {
						m := Message{Locale: name, DeviceKind: kind, Step: step, ExpiresAt: exp, Link: "https://example.com/r/selftest",
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
	}
	if err := r.selfTestRetry(); err != nil {
		return err
	}
	return r.selfTestGroups()
}

// formatTime formats t in the locale's zone and layout, "" for the zero time.
func (ls *localeSet) formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	t = t.In(ls.zone)
	if len(ls.months) != 12 || !strings.Contains(ls.layout, "January") {
		return t.Format(ls.layout)
	}
	// Format the pieces around "January" separately so the localized month
	// name is never read as layout.
	pieces := strings.Split(ls.layout, "January")
	for i, p := range pieces {
		pieces[i] = t.Format(p)
	}
	return strings.Join(pieces, ls.months[t.Month()-1])
}

func loadLocale(src overlay, name string) (*localeSet, error) {
	read := func(file string) (string, error) {
		b, err := src.readFile(name + "/" + file)
		if err != nil {
			return "", err
		}
		return string(b), nil
	}
	ls := &localeSet{name: name, kinds: make(map[reauth.DeviceKind]map[string]string)}

	raw, err := read(fileLocale)
	if err != nil {
		return nil, err
	}
	var lf localeFile
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&lf); err != nil {
		return nil, fmt.Errorf("%s: %w", fileLocale, err)
	}
	for _, kind := range reauth.DeviceKinds {
		forms := lf.Kinds[string(kind)]
		if strings.TrimSpace(forms["noun"]) == "" {
			return nil, fmt.Errorf("%s: kinds.%s.noun is missing", fileLocale, kind)
		}
		ls.kinds[kind] = forms
	}
	for k := range lf.Kinds {
		if !reauth.DeviceKind(k).Valid() {
			return nil, fmt.Errorf("%s: unknown device kind %q", fileLocale, k)
		}
	}
	ls.named = make(map[reauth.DeviceKind]map[string]string)
	for k, forms := range lf.NamedKinds {
		kind := reauth.DeviceKind(k)
		if !kind.Valid() {
			return nil, fmt.Errorf("%s: named_kinds: unknown device kind %q", fileLocale, k)
		}
		for form, v := range forms {
			if _, ok := ls.kinds[kind][form]; !ok {
				return nil, fmt.Errorf("%s: named_kinds.%s.%s has no counterpart in kinds.%s", fileLocale, k, form, k)
			}
			if !strings.Contains(v, namePlaceholder) {
				return nil, fmt.Errorf("%s: named_kinds.%s.%s does not contain %s", fileLocale, k, form, namePlaceholder)
			}
		}
		ls.named[kind] = forms
	}
	ls.layout = lf.DateFormat
	if ls.layout == "" {
		ls.layout = "2006-01-02 15:04 MST"
	}
	if len(lf.Months) != 0 && len(lf.Months) != 12 {
		return nil, fmt.Errorf("%s: months must list 12 names", fileLocale)
	}
	ls.months = lf.Months
	ls.zone = time.UTC
	if lf.TimeZone != "" {
		if ls.zone, err = time.LoadLocation(lf.TimeZone); err != nil {
			return nil, fmt.Errorf("%s: time_zone: %w", fileLocale, err)
		}
	}

	for _, f := range []struct {
		name string
		t    **texttemplate.Template
	}{
		{fileSubject, &ls.subject}, {fileText, &ls.text}, {filePushTitle, &ls.pushTitle}, {filePushBody, &ls.pushBody},
	} {
		if raw, err = read(f.name); err != nil {
			return nil, err
		}
		if *f.t, err = texttemplate.New(f.name).Option("missingkey=error").Parse(raw); err != nil {
			return nil, err
		}
	}
	if raw, err = read(fileHTML); err != nil {
		return nil, err
	}
	if ls.html, err = htmltemplate.New(fileHTML).Option("missingkey=error").Parse(raw); err != nil {
		return nil, err
	}
	if ls.retry, err = loadRetry(src, ls); err != nil {
		return nil, err
	}
	if ls.group, err = loadGroup(src, name); err != nil {
		return nil, err
	}
	return ls, nil
}

// overlay reads a file from over when it has it, else from base.
type overlay struct {
	base fs.FS
	over fs.FS // nil: embedded only
}

func (o overlay) readFile(name string) ([]byte, error) {
	if o.over != nil {
		b, err := fs.ReadFile(o.over, name)
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	b, err := fs.ReadFile(o.base, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s is missing", name)
	}
	return b, err
}

// locales lists the locale directories of both layers.
func (o overlay) locales() ([]string, error) {
	var names []string
	for _, fsys := range []fs.FS{o.base, o.over} {
		if fsys == nil {
			continue
		}
		entries, err := fs.ReadDir(fsys, ".")
		if err != nil {
			return nil, fmt.Errorf("notify: templates: %w", err)
		}
		for _, e := range entries {
			if e.IsDir() && localeNameRE.MatchString(e.Name()) && !slices.Contains(names, e.Name()) {
				names = append(names, e.Name())
			}
		}
	}
	slices.Sort(names)
	return names, nil
}
