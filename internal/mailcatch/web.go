package mailcatch

import (
	"bytes"
	"html/template"
	"net/http"
	"strconv"
	"strings"
)

// Handler serves the caught messages as web pages, for a person at a
// browser (the demo prints its address):
//
//   - GET / lists every message, newest first: time, recipients, subject.
//   - GET /{n} shows message n (1 is the first to arrive): its envelope, the
//     HTML part rendered in a frame and the text part.
//   - GET /{n}/html is the HTML part alone, as the frame loads it.
//
// A message's HTML is someone else's markup: it is served under a CSP
// sandbox (no script, no forms, an opaque origin) and opens its links in a
// new tab, outside the sandbox, so that the demo's user can follow the
// login link as from a mail client. The pages themselves run no script.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		msgs := s.Messages()
		items := make([]webItem, len(msgs))
		for i, m := range msgs {
			items[len(msgs)-1-i] = webItem{N: i + 1, Message: m}
		}
		writePage(w, webList, webListView{Items: items})
	})
	mux.HandleFunc("GET /{n}", func(w http.ResponseWriter, r *http.Request) {
		n, m, ok := s.webMessage(w, r)
		if !ok {
			return
		}
		writePage(w, webShow, webItem{N: n, Message: m})
	})
	mux.HandleFunc("GET /{n}/html", func(w http.ResponseWriter, r *http.Request) {
		_, m, ok := s.webMessage(w, r)
		if !ok {
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		// Images may come from anywhere, as in a mail client; nothing runs.
		h.Set("Content-Security-Policy", "sandbox allow-popups allow-popups-to-escape-sandbox; default-src 'none'; "+
			"img-src data: http: https:; style-src 'unsafe-inline'; frame-ancestors 'self'")
		// The first <base> of a document counts wherever it stands.
		_, _ = w.Write([]byte(`<base target="_blank">` + "\n" + m.HTML))
	})
	return mux
}

// webMessage is the message the path names; a path naming none is
// answered 404 here, and ok is false.
func (s *Server) webMessage(w http.ResponseWriter, r *http.Request) (n int, m Message, ok bool) {
	n, err := strconv.Atoi(r.PathValue("n"))
	s.mu.Lock()
	if err == nil && n >= 1 && n <= len(s.msgs) {
		m, ok = clone(s.msgs[n-1]), true
	}
	s.mu.Unlock()
	if !ok {
		http.Error(w, "no such message", http.StatusNotFound)
	}
	return n, m, ok
}

type webItem struct {
	N int
	Message
}

type webListView struct{ Items []webItem }

func writePage(w http.ResponseWriter, t *template.Template, v any) {
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'")
	_, _ = w.Write(buf.Bytes())
}

var webFuncs = template.FuncMap{
	"join": strings.Join,
	"ts":   func(m Message) string { return m.Received.UTC().Format("2006-01-02 15:04:05Z") },
}

const webStyle = `<style>
body { font: 15px/1.4 system-ui, sans-serif; margin: 0; color: #1e293b; }
header { background: #0f172a; color: #f8fafc; padding: .6rem 1.2rem; }
header a { color: #f8fafc; text-decoration: none; font-weight: 600; }
main { padding: 1rem 1.2rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #e2e8f0; vertical-align: top; }
th { color: #64748b; font-weight: 500; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dt { color: #64748b; }
iframe { width: 100%; height: 34rem; border: 1px solid #cbd5e1; border-radius: 4px; background: #fff; }
pre { white-space: pre-wrap; background: #f8fafc; border: 1px solid #e2e8f0; padding: .8rem; border-radius: 4px; }
.empty { color: #64748b; }
</style>`

var webList = template.Must(template.New("list").Funcs(webFuncs).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Caught emails</title>
<meta http-equiv="refresh" content="10">` + webStyle + `</head><body>
<header><a href="/">Caught emails</a></header>
<main>
{{if .Items}}<table>
<thead><tr><th>#</th><th>Received</th><th>To</th><th>Subject</th></tr></thead>
<tbody>{{range .Items}}
<tr id="msg-{{.N}}"><td>{{.N}}</td><td>{{ts .Message}}</td><td>{{join .To ", "}}</td><td><a href="/{{.N}}">{{or .Subject "(no subject)"}}</a></td></tr>{{end}}
</tbody></table>
{{else}}<p class="empty">No emails yet. This page reloads every 10 seconds.</p>{{end}}
</main></body></html>
`))

var webShow = template.Must(template.New("show").Funcs(webFuncs).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{or .Subject "(no subject)"}}</title>` + webStyle + `</head><body>
<header><a href="/">Caught emails</a></header>
<main>
<h1>{{or .Subject "(no subject)"}}</h1>
<dl>
<dt>Received</dt><dd>{{ts .Message}}</dd>
<dt>From</dt><dd>{{.From}}</dd>
<dt>To</dt><dd>{{join .To ", "}}</dd>
{{with .MessageID}}<dt>Message-ID</dt><dd>{{.}}</dd>{{end}}
</dl>
{{if .HTML}}<h2>HTML</h2>
<iframe title="the message as HTML" sandbox="allow-popups allow-popups-to-escape-sandbox" src="/{{.N}}/html"></iframe>{{end}}
{{if .Text}}<h2>Text</h2>
<pre>{{.Text}}</pre>{{end}}
</main></body></html>
`))
