package worker

import (
	"cmp"
	"errors"
	"math"
	"time"
)

// Defaults for Config, the service's defaults for their variables
// (internal/config reads them from here). A zero field gets its default,
// except where zero has a meaning of its own (noted).
const (
	// LinkTTLDefault is how long a session's link is offered (LINK_TTL).
	LinkTTLDefault = 24 * time.Hour
	// RenewWaitDefault is LINK_RENEW_WAIT's default; a zero
	// Config.RenewWait does not wait.
	RenewWaitDefault = 5 * time.Second
	// PoderoWorkersDefault is PODERO_WORKERS with no rate limit; see
	// PoderoWorkersFor.
	PoderoWorkersDefault = 100
	// NotifyWorkersDefault is concurrent reauth_notify jobs per process.
	NotifyWorkersDefault = 100
	// JobTimeoutDefault: a job running longer is cancelled.
	JobTimeoutDefault = time.Minute
	// RescueAfterDefault: a job still running after this is deemed
	// abandoned and retried. It must exceed JobTimeout.
	RescueAfterDefault = 5 * time.Minute
	// RepeatCooldownDefault is REAUTH_REPEAT_COOLDOWN's default; a zero
	// Config.RepeatCooldown turns the check off.
	RepeatCooldownDefault = 30 * time.Minute
	// RateLimitDefault is PODERO_RATE_LIMIT's default, calls per second for
	// all processes together; a zero Limiter.Rate or Config.PoderoRate is
	// no limit.
	RateLimitDefault = 10.0
	// RateMaxWaitDefault is PODERO_RATE_MAX_WAIT's default, the longest a
	// caller waits for its slot (Limiter.MaxWait).
	RateMaxWaitDefault = 20 * time.Second
	// SyncScheduleDefault and SweepScheduleDefault are the cron specs
	// (SYNC_SCHEDULE, SWEEP_SCHEDULE) of Config.SyncSchedule and
	// SweepSchedule; a nil schedule is off.
	SyncScheduleDefault  = "*/30 * * * *"
	SweepScheduleDefault = "10,40 * * * *"
	// BatchWindowDefault is BATCH_WINDOW's default: the devices of one user
	// that need a link within it are announced in one message. A zero
	// Config.BatchWindow sends each request's message on its own, at once.
	BatchWindowDefault = 2 * time.Minute
)

// ReminderOffsetsDefault is REMINDER_OFFSETS's default: reminders a day and
// three days after the session's creation. A nil Config.ReminderOffsets
// sends none.
var ReminderOffsetsDefault = []time.Duration{24 * time.Hour, 72 * time.Hour}

// PoderoWorkersFor is PODERO_WORKERS's default at rate calls per second:
// four seconds' worth of calls per process (10 to PoderoWorkersDefault), so
// that the jobs a process holds can be served soon and the rest of a
// backlog waits in river_job, written to once, rather than in workers.
func PoderoWorkersFor(rate float64) int {
	if rate <= 0 {
		return PoderoWorkersDefault
	}
	return min(max(int(math.Ceil(4*rate)), 10), PoderoWorkersDefault)
}

// BurstFor is PODERO_RATE_BURST's default at rate calls per second.
func BurstFor(rate float64) int { return 1 + int(rate/10) }

// withDefaults returns cfg with every zero duration and count that has a
// default set to it.
func (cfg Config) withDefaults() Config {
	cfg.LinkTTL = cfg.linkTTL()
	cfg.PoderoWorkers = cmp.Or(cfg.PoderoWorkers, PoderoWorkersFor(cfg.PoderoRate))
	cfg.NotifyWorkers = cmp.Or(cfg.NotifyWorkers, NotifyWorkersDefault)
	cfg.MaintenanceWorkers = cmp.Or(cfg.MaintenanceWorkers, MaintenanceWorkersDefault)
	cfg.JobTimeout = cmp.Or(cfg.JobTimeout, JobTimeoutDefault)
	cfg.RescueAfter = cmp.Or(cfg.RescueAfter, RescueAfterDefault)
	cfg.RetryBase = cmp.Or(cfg.RetryBase, RetryBaseDefault)
	cfg.RetryCap = cmp.Or(cfg.RetryCap, RetryCapDefault)
	cfg.MaxAttempts = cmp.Or(cfg.MaxAttempts, MaxAttemptsDefault)
	cfg.EventsGiveUpAfter = cmp.Or(cfg.EventsGiveUpAfter, EventsGiveUpAfterDefault)
	cfg.SyncInterval = cfg.syncInterval()
	cfg.SyncTick = cfg.syncTick()
	cfg.SyncShare = cmp.Or(cfg.SyncShare, SyncRateShareDefault)
	cfg.ReauthCooldown = cmp.Or(cfg.ReauthCooldown, ReauthCooldownDefault)
	cfg.MaxPerWeek = cmp.Or(cfg.MaxPerWeek, MaxPerWeekDefault)
	cfg.SweepBatch = cmp.Or(cfg.SweepBatch, SweepBatchDefault)
	cfg.UserRefetchAfter = cmp.Or(cfg.UserRefetchAfter, UserRefetchAfter)
	return cfg
}

// linkTTL is LinkTTL, LinkTTLDefault when zero: a zero TTL would make every
// link expire when it is made.
func (cfg Config) linkTTL() time.Duration { return cmp.Or(cfg.LinkTTL, LinkTTLDefault) }

// validate rejects what withDefaults cannot mend.
func (cfg Config) validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"LinkTTL", cfg.LinkTTL}, {"RenewWait", cfg.RenewWait}, {"JobTimeout", cfg.JobTimeout}, {"RescueAfter", cfg.RescueAfter},
		{"RetryBase", cfg.RetryBase}, {"RetryCap", cfg.RetryCap}, {"RepeatCooldown", cfg.RepeatCooldown},
		{"EventsGiveUpAfter", cfg.EventsGiveUpAfter}, {"SyncInterval", cfg.SyncInterval}, {"SyncTick", cfg.SyncTick},
		{"ReauthCooldown", cfg.ReauthCooldown}, {"UserRefetchAfter", cfg.UserRefetchAfter}, {"BatchWindow", cfg.BatchWindow}} {
		if d.v < 0 {
			errs = append(errs, errors.New("worker: "+d.name+" must not be negative"))
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"PoderoWorkers", cfg.PoderoWorkers}, {"NotifyWorkers", cfg.NotifyWorkers}, {"MaintenanceWorkers", cfg.MaintenanceWorkers},
		{"MaxAttempts", cfg.MaxAttempts}, {"MaxPerWeek", cfg.MaxPerWeek}, {"SweepBatch", cfg.SweepBatch}} {
		if n.v < 1 {
			errs = append(errs, errors.New("worker: "+n.name+" must be at least 1"))
		}
	}
	if cfg.RescueAfter <= cfg.JobTimeout {
		errs = append(errs, errors.New("worker: RescueAfter must be longer than JobTimeout"))
	}
	if cfg.PoderoRate < 0 || cfg.SyncShare < 0 || cfg.SyncShare > 1 {
		errs = append(errs, errors.New("worker: PoderoRate must not be negative and SyncShare must be above 0 and at most 1"))
	}
	for i, d := range cfg.ReminderOffsets {
		if d <= 0 || (i > 0 && d <= cfg.ReminderOffsets[i-1]) {
			errs = append(errs, errors.New("worker: ReminderOffsets must be increasing positive durations"))
			break
		}
	}
	return errors.Join(errs...)
}
