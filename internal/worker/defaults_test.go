package worker

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestConfigDefaults(t *testing.T) {
	t.Parallel()

	t.Run("ZeroGetsDefaults", func(t *testing.T) {
		t.Parallel()
		cfg := Config{}.withDefaults()
		require.NoError(t, cfg.validate())
		require.Equal(t, LinkTTLDefault, cfg.LinkTTL, "a zero LinkTTL would make every link expire when it is made")
		require.Equal(t, LinkTTLDefault, Config{}.linkTTL(), "the link a worker makes with a zero LinkTTL")
		require.Equal(t, PoderoWorkersDefault, cfg.PoderoWorkers)
		require.Equal(t, NotifyWorkersDefault, cfg.NotifyWorkers)
		require.Equal(t, JobTimeoutDefault, cfg.JobTimeout)
		require.Equal(t, RescueAfterDefault, cfg.RescueAfter)
		require.Equal(t, RetryCapDefault, cfg.RetryCap)
		require.Equal(t, MaxAttemptsDefault, cfg.MaxAttempts)
		require.Equal(t, ReauthCooldownDefault, cfg.ReauthCooldown)
		require.Equal(t, MaxPerWeekDefault, cfg.MaxPerWeek)
		require.Equal(t, SweepBatchDefault, cfg.SweepBatch)
		require.Equal(t, SyncIntervalDefault, cfg.SyncInterval)
		require.Equal(t, SyncRateShareDefault, cfg.SyncShare)
		require.Equal(t, EventsGiveUpAfterDefault, cfg.EventsGiveUpAfter)
		// Zero means off for these: they keep it.
		require.Zero(t, cfg.RepeatCooldown)
		require.Zero(t, cfg.RenewWait)
		require.Nil(t, cfg.ReminderOffsets)
	})

	t.Run("SetKept", func(t *testing.T) {
		t.Parallel()
		cfg := Config{LinkTTL: time.Hour, PoderoRate: 2, ReauthCooldown: time.Minute}.withDefaults()
		require.Equal(t, time.Hour, cfg.LinkTTL)
		require.Equal(t, time.Minute, cfg.ReauthCooldown)
		require.Equal(t, PoderoWorkersFor(2), cfg.PoderoWorkers)
	})

	t.Run("Rejected", func(t *testing.T) {
		t.Parallel()
		for name, c := range map[string]Config{
			"LinkTTL must not be negative":                {LinkTTL: -time.Second},
			"NotifyWorkers must be at least 1":            {NotifyWorkers: -1},
			"RescueAfter must be longer than JobTimeout":  {JobTimeout: time.Minute, RescueAfter: time.Minute},
			"SyncShare must be above 0 and at most 1":     {SyncShare: 1.5},
			"ReminderOffsets must be increasing positive": {ReminderOffsets: []time.Duration{time.Hour, time.Hour}},
			"RepeatCooldown must not be negative":         {RepeatCooldown: -time.Second},
		} {
			require.ErrorContains(t, c.withDefaults().validate(), name)
			_, err := NewClient(c)
			require.ErrorContains(t, err, name)
		}
	})
}
