package notify

import (
	"bytes"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/reauth/reauth"
)

// A grouped message (one per user and step, BATCH_WINDOW) names several
// devices, each with its own link. Its templates are the group_* files of
// a locale; a locale without them (one an operator added) renders groups
// with the default locale's.

// DeviceLink is one device of a grouped message, with its own link.
type DeviceLink struct {
	DeviceKind          reauth.DeviceKind
	DeviceID            string
	Manufacturer, Model string // as in Message
	Link                string
	ExpiresAt           time.Time // zero: not shown
}

// The grouped message's template files.
const (
	fileGroupSubject   = "group_subject.txt.tmpl"
	fileGroupText      = "group_body.txt.tmpl"
	fileGroupHTML      = "group_body.html.tmpl"
	fileGroupPushTitle = "group_push_title.txt.tmpl"
	fileGroupPushBody  = "group_push_body.txt.tmpl"
)

var groupFiles = []string{fileGroupSubject, fileGroupText, fileGroupHTML, fileGroupPushTitle, fileGroupPushBody}

// groupSet is a locale's grouped-message templates.
type groupSet struct {
	subject, text, pushTitle, pushBody *texttemplate.Template
	html                               *htmltemplate.Template
}

// groupData is what the group templates see: everything single messages
// do (of the first device), and the devices.
type groupData struct {
	templateData
	Devices []groupDevice
	Count   int // len(Devices), two or more
	Last    int // Count - 1, for "a, b and c"
}

// groupDevice is one device as the group templates see it.
type groupDevice struct {
	Link    string
	Device  map[string]string // its kind's forms, named when it has a name
	Name    string
	Kind    string
	Expires string
}

// loadGroup loads locale name's group templates; nil when the locale has
// none (every one missing), an error when it has only some.
func loadGroup(src overlay, name string) (*groupSet, error) {
	var present int
	for _, f := range groupFiles {
		if src.has(name + "/" + f) {
			present++
		}
	}
	if present == 0 {
		return nil, nil
	}
	g := &groupSet{}
	for _, f := range []struct {
		name string
		t    **texttemplate.Template
	}{{fileGroupSubject, &g.subject}, {fileGroupText, &g.text}, {fileGroupPushTitle, &g.pushTitle}, {fileGroupPushBody, &g.pushBody}} {
		raw, err := src.readFile(name + "/" + f.name)
		if err != nil {
			return nil, err
		}
		if *f.t, err = texttemplate.New(f.name).Option("missingkey=error").Parse(string(raw)); err != nil {
			return nil, err
		}
	}
	raw, err := src.readFile(name + "/" + fileGroupHTML)
	if err != nil {
		return nil, err
	}
	if g.html, err = htmltemplate.New(fileGroupHTML).Option("missingkey=error").Parse(string(raw)); err != nil {
		return nil, err
	}
	return g, nil
}

// grouped reports whether m is a grouped message.
func grouped(m Message) bool { return len(m.Devices) > 1 }

// prepareGroup checks grouped message m and returns its locale, templates
// and data.
func (r *Renderer) prepareGroup(m Message) (*localeSet, *groupSet, groupData, error) {
	first := m.Devices[0]
	single := m
	single.Devices = nil
	single.DeviceKind, single.DeviceID, single.Manufacturer, single.Model = first.DeviceKind, first.DeviceID, first.Manufacturer, first.Model
	single.Link, single.ExpiresAt = first.Link, first.ExpiresAt
	ls, data, err := r.prepare(single)
	if err != nil {
		return nil, nil, groupData{}, err
	}
	g := ls.group
	if g == nil {
		g = r.locales[DefaultLocale].group
	}
	if g == nil {
		return nil, nil, groupData{}, errors.New("notify: no templates for grouped messages")
	}
	gd := groupData{templateData: data, Count: len(m.Devices), Last: len(m.Devices) - 1}
	for _, d := range m.Devices {
		if !d.DeviceKind.Valid() {
			return nil, nil, groupData{}, fmt.Errorf("notify: unknown device kind %q", d.DeviceKind)
		}
		if strings.TrimSpace(d.Link) == "" {
			return nil, nil, groupData{}, errors.New("notify: a device of the message has no link")
		}
		name := ls.deviceNames(Message{DeviceKind: d.DeviceKind, Manufacturer: d.Manufacturer, Model: d.Model})[0]
		gd.Devices = append(gd.Devices, groupDevice{Link: d.Link, Device: ls.forms(d.DeviceKind, name), Name: name,
			Kind: string(d.DeviceKind), Expires: ls.formatTime(d.ExpiresAt)})
	}
	return ls, g, gd, nil
}

// renderGroup is Render for a grouped message.
func (r *Renderer) renderGroup(m Message) (Rendered, error) {
	ls, g, data, err := r.prepareGroup(m)
	if err != nil {
		return Rendered{}, err
	}
	if data.Subject, err = groupLine(ls, g.subject, fileGroupSubject, data); err != nil {
		return Rendered{}, err
	}
	var buf bytes.Buffer
	if err := g.text.Execute(&buf, data); err != nil {
		return Rendered{}, fmt.Errorf("notify: %s/%s: %w", ls.name, fileGroupText, err)
	}
	text := strings.TrimSpace(buf.String()) + "\n"
	buf.Reset()
	if err := g.html.Execute(&buf, data); err != nil {
		return Rendered{}, fmt.Errorf("notify: %s/%s: %w", ls.name, fileGroupHTML, err)
	}
	return Rendered{Subject: data.Subject, Text: text, HTML: buf.String()}, nil
}

// renderGroupPush is RenderPush for a grouped message.
func (r *Renderer) renderGroupPush(m Message) (title, body string, err error) {
	ls, g, data, err := r.prepareGroup(m)
	if err != nil {
		return "", "", err
	}
	if title, err = groupLine(ls, g.pushTitle, fileGroupPushTitle, data); err != nil {
		return "", "", err
	}
	if body, err = groupLine(ls, g.pushBody, fileGroupPushBody, data); err != nil {
		return "", "", err
	}
	return title, body, nil
}

// groupLine is line for a group template.
func groupLine(ls *localeSet, t *texttemplate.Template, file string, data groupData) (string, error) {
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

// selfTestGroups renders every locale's grouped messages once per step,
// with and without names and expiries.
func (r *Renderer) selfTestGroups() error {
	expires := time.Date(2030, time.March, 4, 5, 6, 0, 0, time.UTC)
	for _, name := range r.Locales() {
		for _, step := range []int{0, 1} {
			m := Message{Locale: name, Step: step, Devices: []DeviceLink{
				{DeviceKind: reauth.Inverter, Link: "https://example.com/r/selftest1", ExpiresAt: expires, Manufacturer: "Selftest", Model: "Model With A Rather Long Name 2000"},
				{DeviceKind: reauth.ElectricVehicle, Link: "https://example.com/r/selftest2"},
				{DeviceKind: reauth.Wallbox, Link: "https://example.com/r/selftest3", ExpiresAt: expires},
			}}
			if _, err := r.Render(m); err != nil {
				return err
			}
			if _, _, err := r.RenderPush(m); err != nil {
				return err
			}
		}
	}
	return nil
}
