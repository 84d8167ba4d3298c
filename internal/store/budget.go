package store

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/reauth/reauth/internal/podero"
)

// Budget is how Podero's rate limit is being spent, for every process
// together: what operators see in `reauth stats`, /ops and /metrics.
type Budget struct {
	// Rates are the calls a second by purpose over about the last minute
	// (see PoderoCallRates); purposes without calls are absent.
	Rates map[string]float64 `json:"calls_per_second"`
	// Waiting is the reauthentication requests (reauth_device jobs) not
	// yet worked.
	Waiting int64 `json:"requests_waiting"`
}

// requestPurposes are the purposes that work down the requests.
var requestPurposes = []string{podero.PurposeRequest, podero.PurposeSweep, podero.PurposeRenewal}

// RequestRate is the calls a second the requests get.
func (b Budget) RequestRate() float64 {
	var r float64
	for _, p := range requestPurposes {
		r += b.Rates[p]
	}
	return r
}

// DrainTime is how long the waiting requests take at the rate they get: 0
// with none waiting, and ok false when they wait but get no calls at all.
func (b Budget) DrainTime() (d time.Duration, ok bool) {
	if b.Waiting == 0 {
		return 0, true
	}
	r := b.RequestRate()
	if r < 1e-3 {
		return 0, false
	}
	return time.Duration(math.Min(float64(b.Waiting)/r, float64(100*24*time.Hour/time.Second)) * float64(time.Second)), true
}

// DrainText says DrainTime for people: "-" with none waiting.
func (b Budget) DrainText() string {
	d, ok := b.DrainTime()
	switch {
	case !ok:
		return "never at this rate: the requests get no calls"
	case b.Waiting == 0:
		return "-"
	}
	return fmt.Sprintf("about %s at %.2f calls/s", d.Round(time.Second), b.RequestRate())
}

// GetBudget reads the budget.
func GetBudget(ctx context.Context, db DB) (Budget, error) {
	rates, err := PoderoCallRates(ctx, db)
	if err != nil {
		return Budget{}, err
	}
	b := Budget{Rates: rates}
	b.Waiting, err = requestsWaiting(ctx, db)
	return b, err
}
