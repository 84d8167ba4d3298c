package sim

import (
	"html/template"
	"net/http"
)

// connectPage is the stand-in for the manufacturer login an end user sees
// at an authentication_url (or a device's resolution_link).
const connectPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body>
<h1>{{.Title}}</h1>
{{if .Device}}<p>{{.Device}}</p>{{end}}
<p>{{.Message}}</p>
{{if .Links}}<p><a id="success" href="?result=success">Log in and connect</a></p>
<p><a id="cancel" href="?result=cancel">Cancel</a></p>{{end}}
</body></html>
`

// page is the data of connectPage.
type page struct {
	Title, Device, Message string
	Links                  bool
}

// handleConnectSession is GET /connect/{session_id}, the authentication_url
// of an auth session. No auth: it is what the end user's browser opens.
func (s *Server) handleConnectSession(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	sess := s.sessions[normUUID(r.PathValue("session_id"))]
	s.mu.Unlock()
	if sess == nil {
		s.renderPage(w, http.StatusNotFound, page{Title: "Link not found", Message: "This link is unknown or no longer valid."})
		return
	}
	s.connect(w, r, sess.deviceID, sess.successURL, sess.cancelURL)
}

// handleConnectDevice is GET /connect/device/{device_id}, the
// resolution_link of a lapsed device: the same page, without partner
// redirects.
func (s *Server) handleConnectDevice(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	d := s.devices[normUUID(r.PathValue("device_id"))]
	s.mu.Unlock()
	if d == nil {
		s.renderPage(w, http.StatusNotFound, page{Title: "Device not found", Message: "This device is unknown."})
		return
	}
	s.connect(w, r, d.id, nil, nil)
}

// connect plays the manufacturer login for device id: without ?result the
// login page; ?result=success reconnects the device (unless its login
// does not take, see LoginDoesNotTake) and redirects to
// successURL; ?result=cancel redirects to cancelURL. Without a URL to
// redirect to it shows a small page instead.
func (s *Server) connect(w http.ResponseWriter, r *http.Request, id string, successURL, cancelURL *string) {
	s.mu.Lock()
	d := s.devices[id]
	name, kind := d.name, d.kind
	s.mu.Unlock()
	label := name + " (" + string(kind) + " " + id + ")"

	switch r.URL.Query().Get("result") {
	case "":
		s.renderPage(w, http.StatusOK, page{Title: "Connect your device", Device: label,
			Message: "Log in with the manufacturer to reconnect this device.", Links: true})
	case "success":
		s.mu.Lock()
		if !d.authenticated && !d.loginNotTaking {
			d.authenticated, d.changedAt = true, s.cfg.Now()
		}
		s.mu.Unlock()
		if successURL != nil && *successURL != "" {
			http.Redirect(w, r, *successURL, http.StatusFound)
			return
		}
		s.renderPage(w, http.StatusOK, page{Title: "Connected", Device: label, Message: "Your device is connected again. You can close this page."})
	case "cancel":
		if cancelURL != nil && *cancelURL != "" {
			http.Redirect(w, r, *cancelURL, http.StatusFound)
			return
		}
		s.renderPage(w, http.StatusOK, page{Title: "Cancelled", Device: label, Message: "Nothing was changed. You can close this page."})
	default:
		s.renderPage(w, http.StatusBadRequest, page{Title: "Bad request", Message: "result must be success or cancel."})
	}
}

func (s *Server) renderPage(w http.ResponseWriter, status int, p page) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = s.pageTmpl.Execute(w, p)
}

// parsePage parses connectPage; it is a constant, so failing is a bug.
func parsePage() *template.Template {
	return template.Must(template.New("connect").Parse(connectPage))
}
