package notify

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// TestTLSPolicy: STARTTLS is required for a mail server on another host
// unless the URL says otherwise; a local one may go without.
func TestTLSPolicy(t *testing.T) {
	t.Parallel()
	r, err := NewRenderer("")
	require.NoError(t, err)
	for url, want := range map[string]string{
		"smtp://mail.example.com:587":                    "TLSMandatory",
		"smtp://u:p@mail.example.com":                    "TLSMandatory",
		"smtp://mail.example.com?starttls=required":      "TLSMandatory",
		"smtp://mail.example.com?starttls=opportunistic": "TLSOpportunistic",
		"smtp://127.0.0.1:2525":                          "TLSOpportunistic",
		"smtp://localhost:2525":                          "TLSOpportunistic",
		"smtp://[::1]:2525":                              "TLSOpportunistic",
		"smtp://127.0.0.1:2525?starttls=required":        "TLSMandatory",
		"smtps://mail.example.com":                       "NoTLS", // TLS at dial time
	} {
		e, err := NewEmail(EmailConfig{URL: url, From: "reauth@example.com"}, r)
		require.NoError(t, err, url)
		require.Equal(t, want, e.client.TLSPolicy(), url)
	}
}
