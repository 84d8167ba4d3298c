package mailcatch

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
)

// maxDepth bounds multipart nesting.
const maxDepth = 10

var wordDecoder = &mime.WordDecoder{}

// parse fills the parsed fields of a Message from raw. A message that does
// not parse keeps only Raw (and whatever parsed before the fault).
func parse(raw []byte) Message {
	m := Message{Raw: raw}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return m
	}
	m.Header = msg.Header
	m.Subject = decodeHeader(msg.Header.Get("Subject"))
	m.MessageID = strings.TrimSpace(msg.Header.Get("Message-Id"))
	walk(&m, textproto.MIMEHeader(msg.Header), msg.Body, 0)
	return m
}

func decodeHeader(v string) string {
	if d, err := wordDecoder.DecodeHeader(v); err == nil {
		return d
	}
	return v
}

// walk visits one MIME entity: multiparts are descended into, the first
// text/plain and text/html leaves fill Text and HTML.
func walk(m *Message, h textproto.MIMEHeader, body io.Reader, depth int) {
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = "text/plain"
	}
	mediaType, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		if depth >= maxDepth || params["boundary"] == "" {
			return
		}
		mr := multipart.NewReader(body, params["boundary"])
		for {
			// NextRawPart keeps Content-Transfer-Encoding for decode to handle.
			p, err := mr.NextRawPart()
			if err != nil {
				return
			}
			walk(m, p.Header, p, depth+1)
		}
	}
	if strings.EqualFold(h.Get("Content-Disposition"), "attachment") ||
		strings.HasPrefix(strings.ToLower(h.Get("Content-Disposition")), "attachment;") {
		return
	}
	switch mediaType {
	case "text/plain":
		if m.Text == "" {
			m.Text = decode(h, body)
		}
	case "text/html":
		if m.HTML == "" {
			m.HTML = decode(h, body)
		}
	}
}

// decode removes the transfer encoding. Charsets other than UTF-8 and
// US-ASCII are not converted.
func decode(h textproto.MIMEHeader, body io.Reader) string {
	switch strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding"))) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		// The decoder skips CR and LF between lines.
		body = base64.NewDecoder(base64.StdEncoding, body)
	}
	b, err := io.ReadAll(body)
	if err != nil && len(b) == 0 {
		return ""
	}
	return strings.ReplaceAll(string(b), "\r\n", "\n")
}
