package sendwindow_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/reauth/reauth/internal/sendwindow"
)

func vienna(t *testing.T) *time.Location {
	t.Helper()
	loc, err := sendwindow.LoadZone("Europe/Vienna")
	require.NoError(t, err)
	return loc
}

func TestParse(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"08:00-20:00": "08:00-20:00", " 08:00 - 20:00 ": "08:00-20:00", "22:00-06:00": "22:00-06:00",
		"09:30-24:00": "09:30-24:00", "00:00-24:00": "off", "off": "off",
	} {
		w, err := sendwindow.Parse(in)
		require.NoError(t, err, in)
		require.Equal(t, want, w.String(), in)
	}
	for _, in := range []string{"", "8:00-20:00", "08:00", "08:00-08:00", "25:00-06:00", "08:60-20:00", "24:00-06:00", "+8:00-20:00", "08:00-20:00x", "always"} {
		_, err := sendwindow.Parse(in)
		require.Error(t, err, in)
	}
	require.True(t, sendwindow.Always.IsAlways())
	require.Equal(t, sendwindow.WindowDefault, sendwindow.MustParse(sendwindow.WindowDefault).String())
}

func TestNext(t *testing.T) {
	t.Parallel()
	loc := vienna(t)
	day := sendwindow.MustParse("08:00-20:00")
	night := sendwindow.MustParse("22:00-06:00")
	at := func(s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04", s, loc)
		require.NoError(t, err)
		return v
	}
	for _, c := range []struct {
		name string
		w    sendwindow.Window
		t    string
		want string
	}{
		{"inside goes now", day, "2026-06-10 12:00", "2026-06-10 12:00"},
		{"start is inside", day, "2026-06-10 08:00", "2026-06-10 08:00"},
		{"before the start waits for it", day, "2026-06-10 03:10", "2026-06-10 08:00"},
		{"the end is outside", day, "2026-06-10 20:00", "2026-06-11 08:00"},
		{"after the end waits for tomorrow", day, "2026-06-10 21:00", "2026-06-11 08:00"},
		{"across midnight: inside late", night, "2026-06-10 23:00", "2026-06-10 23:00"},
		{"across midnight: inside early", night, "2026-06-10 05:59", "2026-06-10 05:59"},
		{"across midnight: outside waits for the evening", night, "2026-06-10 06:00", "2026-06-10 22:00"},
		{"always", sendwindow.Always, "2026-06-10 03:10", "2026-06-10 03:10"},
		{"month end", day, "2026-06-30 21:00", "2026-07-01 08:00"},
	} {
		got := c.w.Next(at(c.t), loc)
		require.True(t, at(c.want).Equal(got), "%s: got %s", c.name, got.In(loc))
		require.True(t, c.w.Contains(got, loc), c.name)
	}
}

// TestNextAcrossDaylightSaving: Vienna jumps from 02:00 CET to 03:00 CEST
// on 2026-03-29 and back from 03:00 CEST to 02:00 CET on 2026-10-25; the
// window's 08:00 is 08:00 on the wall clock either side.
func TestNextAcrossDaylightSaving(t *testing.T) {
	t.Parallel()
	loc := vienna(t)
	day := sendwindow.MustParse("08:00-20:00")
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		require.NoError(t, err)
		return v
	}
	for _, c := range []struct{ name, t, want string }{
		// 03:10 CEST, the night the clocks go forward: 08:00 CEST.
		{"spring 03:10", "2026-03-29T01:10:00Z", "2026-03-29T06:00:00Z"},
		// 21:00 CET the evening before: 08:00 CEST, 10 hours later.
		{"spring 21:00 the day before", "2026-03-28T20:00:00Z", "2026-03-29T06:00:00Z"},
		// 12:00 CEST that day: now.
		{"spring noon", "2026-03-29T10:00:00Z", "2026-03-29T10:00:00Z"},
		// 03:10 CET, the night the clocks go back (after the repeat hour).
		{"autumn 03:10", "2026-10-25T02:10:00Z", "2026-10-25T07:00:00Z"},
		// 02:30 CEST, the first of the repeated hour: 08:00 CET.
		{"autumn 02:30 first", "2026-10-25T00:30:00Z", "2026-10-25T07:00:00Z"},
		// 21:00 CEST the evening before: 08:00 CET, 12 hours later.
		{"autumn 21:00 the day before", "2026-10-24T19:00:00Z", "2026-10-25T07:00:00Z"},
		{"autumn 19:59 CET", "2026-10-25T18:59:00Z", "2026-10-25T18:59:00Z"},
	} {
		got := day.Next(utc(c.t), loc)
		require.True(t, utc(c.want).Equal(got), "%s: got %s", c.name, got.In(loc))
	}
	// A start inside the spring gap (02:30 does not exist that night) is the
	// wall time after the jump.
	gap := sendwindow.MustParse("02:30-06:00")
	got := gap.Next(utc("2026-03-29T00:10:00Z"), loc) // 01:10 CET
	require.Equal(t, "03:30", got.In(loc).Format("15:04"))
	require.True(t, gap.Contains(got, loc))
}

func TestZones(t *testing.T) {
	t.Parallel()
	utc := sendwindow.Zones{Default: time.UTC}
	require.Equal(t, "America/New_York", utc.For("America/New_York", "AT").String(), "the contact's zone first")
	require.Equal(t, "Europe/Vienna", utc.For("", "AT").String(), "then the country's")
	require.Equal(t, "Europe/Berlin", utc.For("Mars/Olympus", " de ").String(), "an unknown zone is passed over")
	require.Equal(t, "UTC", utc.For("", "Austria").String(), "then DEFAULT_TIMEZONE")
	require.Equal(t, "UTC", utc.For("Local", "").String())
	require.Equal(t, sendwindow.TimezoneDefault, sendwindow.Zones{}.For("", "").String())

	for _, bad := range []string{"", "Local", "Europe/Atlantis", "../../etc/passwd"} {
		_, err := sendwindow.LoadZone(bad)
		require.Error(t, err, bad)
	}
	_, err := sendwindow.LoadZone("UTC")
	require.NoError(t, err)
}

// TestCountryZones: every zone of the table is in the embedded database.
func TestCountryZones(t *testing.T) {
	t.Parallel()
	for _, cc := range []string{"AT", "DE", "CH", "SE", "HU", "IT", "PL", "GB", "UA", "US", "AU", "BR", "RU"} {
		name, ok := sendwindow.CountryZone(cc)
		require.True(t, ok, cc)
		_, err := sendwindow.LoadZone(name)
		require.NoError(t, err, cc)
	}
	sendwindow.EachCountryZone(func(cc, zone string) {
		_, err := sendwindow.LoadZone(zone)
		require.NoError(t, err, cc)
	})
}
