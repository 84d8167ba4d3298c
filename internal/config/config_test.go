package config

import (
	"bytes"
	"cmp"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/reauth/reauth/internal/httpapi"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoad(t *testing.T) {
	t.Parallel()

	full := map[string]string{
		"DATABASE_URL":         "postgres://app:DBPASS-x1@db:5432/reauth",
		"PODERO_BASE_URL":      "https://app.podero.com/",
		"PODERO_CLIENT_ID":     "client",
		"PODERO_CLIENT_SECRET": "CLIENTSECRET-x2",
		"SMTP_URL":             "smtp://mailer:SMTPPASS-x3@mail:587",
		"MAIL_FROM":            "Reauth <noreply@example.com>",
		"PUBLIC_BASE_URL":      "https://reauth.example.com",
		"API_TOKENS":           "crm:APITOKEN-x4-0123456789,APITOKEN-x5-0123456789,opsteam:ops+read:APITOKEN-x7-0123456789",
		"LINK_SECRET":          "LINKSECRET-x6-0123456789abcdef0123456789",
		"LINK_TTL":             "12h",
		"LOG_LEVEL":            "debug",
	}

	t.Run("Valid", func(t *testing.T) {
		t.Parallel()
		c, err := Load(envOf(full))
		require.NoError(t, err)
		require.NoError(t, c.Require(ServeVars...))
		require.Equal(t, "https://app.podero.com", c.PoderoBaseURL)
		require.Equal(t, "https://app.podero.com/api/partners/v2.0/auth/token", c.PoderoTokenURL)
		require.Equal(t, httpapi.AddrDefault, c.HTTPAddr)
		require.Equal(t, slog.LevelDebug, c.LogLevel)
		require.Len(t, c.APITokens, 3)
		require.Equal(t, "crm", c.APITokens[0].Name)
		require.Equal(t, "token2", c.APITokens[1].Name)
		require.True(t, c.APITokens[1].Allows(httpapi.ScopeEnqueue))
		require.True(t, c.APITokens[1].Allows(httpapi.ScopeRead))
		require.False(t, c.APITokens[1].Allows(httpapi.ScopeOps))
		require.Equal(t, "opsteam", c.APITokens[2].Name)
		require.Equal(t, []string{httpapi.ScopeOps, httpapi.ScopeRead}, c.APITokens[2].Scopes)
		require.False(t, c.APITokens[1].Allows(httpapi.ScopeLinks), "read alone shows no whole login links")
	})

	t.Run("LinksScope", func(t *testing.T) {
		t.Parallel()
		env := maps.Clone(full)
		env["API_TOKENS"] = "support:read+links:APITOKEN-x8-0123456789"
		c, err := Load(envOf(env))
		require.NoError(t, err)
		require.True(t, c.APITokens[0].Allows(httpapi.ScopeRead))
		require.True(t, c.APITokens[0].Allows(httpapi.ScopeLinks))
		env["API_TOKENS"] = "support:read+link:APITOKEN-x8-0123456789"
		_, err = Load(envOf(env))
		require.ErrorContains(t, err, `unknown scope "link" (enqueue, read, ops, ops-read, links)`)
	})

	t.Run("SecretsMaskedWhenPrinted", func(t *testing.T) {
		t.Parallel()
		c, err := Load(envOf(full))
		require.NoError(t, err)
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("starting", slog.Any("config", c))
		out := buf.String() + fmt.Sprintf("%v %+v %#v", c, c, c)
		for _, secret := range []string{"DBPASS-x1", "CLIENTSECRET-x2", "SMTPPASS-x3", "APITOKEN-x4", "APITOKEN-x5", "LINKSECRET-x6", "APITOKEN-x7"} {
			require.NotContains(t, out, secret)
		}
		require.Contains(t, buf.String(), "postgres://app:%2A%2A%2A%2A@db:5432/reauth")
	})

	t.Run("FromFile", func(t *testing.T) {
		t.Parallel()
		f := filepath.Join(t.TempDir(), "secret")
		require.NoError(t, os.WriteFile(f, []byte("FILESECRET\n"), 0o600))
		c, err := Load(envOf(map[string]string{"PODERO_CLIENT_SECRET_FILE": f}))
		require.NoError(t, err)
		require.Equal(t, "FILESECRET", c.PoderoClientSecret.Reveal())

		_, err = Load(envOf(map[string]string{"PODERO_CLIENT_SECRET_FILE": f, "PODERO_CLIENT_SECRET": "x"}))
		require.ErrorContains(t, err, "not both")
		_, err = Load(envOf(map[string]string{"PODERO_CLIENT_SECRET_FILE": "/nonexistent/FILESECRET"}))
		require.ErrorContains(t, err, "PODERO_CLIENT_SECRET_FILE: cannot read the file")
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		_, err := Load(envOf(map[string]string{
			"PODERO_BASE_URL": "app.podero.com", "SMTP_URL": "http://mail", "LINK_TTL": "soon",
			"LOG_FORMAT": "xml", "LOG_LEVEL": "loud", "API_TOKENS": "short", "LINK_SECRET": "short",
			"PODERO_USERNAME": "u", "PODERO_WORKERS": "many", "JOB_RESCUE_AFTER": "10s",
			"REDIRECT_HOSTS": "a/b",
		}))
		require.Error(t, err)
		for _, want := range []string{"PODERO_BASE_URL", "SMTP_URL", "LINK_TTL", "LOG_FORMAT", "LOG_LEVEL",
			"API_TOKENS entry 1", "LINK_SECRET", "PODERO_PASSWORD", "PODERO_WORKERS", "JOB_RESCUE_AFTER", "REDIRECT_HOSTS"} {
			require.ErrorContains(t, err, want)
		}
	})

	t.Run("RequireListsEveryMissing", func(t *testing.T) {
		t.Parallel()
		c, err := Load(envOf(map[string]string{"DATABASE_URL": "postgres://x/y"}))
		require.NoError(t, err)
		err = c.Require(ServeVars...)
		require.ErrorContains(t, err, "PODERO_BASE_URL, PODERO_CLIENT_ID, PODERO_CLIENT_SECRET, SMTP_URL, MAIL_FROM, PUBLIC_BASE_URL, API_TOKENS, LINK_SECRET")
		require.NotContains(t, err.Error(), "DATABASE_URL")
	})
}

// TestVarsDocumentedAndDeployed checks that the table in
// docs/configuration.md and settings name the same variables, with the
// same default and the same commands needing them, and that the deploy
// files name only variables Load reads.
func TestVarsDocumentedAndDeployed(t *testing.T) {
	t.Parallel()
	known := map[string]bool{}
	for _, v := range Vars {
		known[v] = true
	}
	doc, err := os.ReadFile("../../docs/configuration.md")
	require.NoError(t, err)
	documented := map[string]bool{}
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.SplitN(line, "|", 5) // "", variables, needed by, default, meaning
		require.Len(t, cells, 5, "docs/configuration.md: a row without variable, needed by, default and meaning: %s", line)
		needs := strings.TrimSpace(cells[2])
		def := strings.ReplaceAll(strings.TrimSpace(cells[3]), "`", "")
		for _, m := range regexp.MustCompile("`([A-Z_]+)`").FindAllStringSubmatch(cells[1], -1) {
			name := m[1]
			require.False(t, documented[name], "docs/configuration.md lists %s twice", name)
			documented[name] = true
			s, ok := lookup(name)
			require.True(t, ok, "docs/configuration.md documents %s, which Load does not read", name)
			require.Equal(t, cmp.Or(s.def, "—"), def, "the default of %s in docs/configuration.md", name)
			require.Equal(t, s.needs, needs, "who needs %s in docs/configuration.md", name)
		}
	}
	for _, v := range Vars {
		require.True(t, documented[v], "docs/configuration.md does not document %s", v)
	}

	var used []string
	compose, err := os.ReadFile("../../docker-compose.yml")
	require.NoError(t, err)
	var c struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(compose, &c))
	require.Contains(t, c.Services, "reauth")
	for _, s := range c.Services {
		for k := range s.Environment {
			if !strings.HasPrefix(k, "POSTGRES_") { // the postgres image's own
				used = append(used, k)
			}
		}
	}

	k8s, err := os.ReadFile("../../deploy/k8s/reauth.yaml")
	require.NoError(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(k8s))
	docs := 0
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			break
		}
		docs++
		if doc["kind"] == "ConfigMap" {
			for k := range doc["data"].(map[string]any) {
				used = append(used, k)
			}
		}
	}
	require.Equal(t, 4, docs)
	for _, m := range regexp.MustCompile(`name: ([A-Z_]+)`).FindAllStringSubmatch(string(k8s), -1) {
		used = append(used, m[1])
	}
	sort.Strings(used)
	require.NotEmpty(t, used)
	for _, v := range used {
		require.True(t, known[strings.TrimSuffix(v, "_FILE")], "deploy files use unknown variable %s", v)
	}
}

// TestLogValue checks that the startup log shows every variable, durations
// as durations, and no secret.
func TestLogValue(t *testing.T) {
	t.Parallel()
	env := map[string]string{"PODERO_TIMEOUT": "15s", "LINK_TTL": "12h"}
	var secrets []string
	for _, s := range settings {
		if s.secret {
			v := "SECRET-" + s.name + "-0123456789abcdef0123456789"
			env[s.name] = v
			secrets = append(secrets, v)
		}
	}
	env["PUSH_WEBHOOK_URL"] = "https://push.example.com/" + env["PUSH_WEBHOOK_URL"]
	c, _ := Load(envOf(env)) // some secrets are not valid values; the log must hide them all the same
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("starting", slog.Any("config", c))
	for _, v := range secrets {
		require.NotContains(t, buf.String(), v)
	}
	require.Contains(t, buf.String(), `"push_webhook_url":"https://push.example.com/…"`)
	for _, name := range Vars {
		require.Contains(t, buf.String(), `"`+strings.ToLower(name)+`":`, "the startup log misses %s", name)
	}
	require.Contains(t, buf.String(), `"podero_timeout":"15s"`)
	require.Contains(t, buf.String(), `"link_ttl":"12h0m0s"`)
	require.Contains(t, buf.String(), `"reminder_offsets":["24h0m0s","72h0m0s"]`)
}
