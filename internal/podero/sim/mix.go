package sim

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/reauth/reauth"
)

// DeviceMix is the share of users with 0, 1, 2, ... devices: DeviceMix{0.3,
// 0.4, 0.2, 0.1} gives 30% of users no device, 40% one, 20% two and 10%
// three. Each user's count is drawn from the seed, and so is each device's
// kind (inverter, electric_vehicle or wallbox, equally likely and
// independently, so a user may have two of a kind). The shares must not be
// negative and must add up to 1. It implements flag.Value:
// "0.3,0.4,0.2,0.1".
type DeviceMix []float64

// Validate reports shares that are negative, not numbers, or do not add up
// to 1 (within 0.001).
func (m DeviceMix) Validate() error {
	sum := 0.0
	for i, share := range m {
		if share < 0 || math.IsNaN(share) || math.IsInf(share, 0) {
			return fmt.Errorf("device mix: the share of users with %d devices is %v, not 0 to 1", i, share)
		}
		sum += share
	}
	if len(m) > 0 && math.Abs(sum-1) > 0.001 {
		return fmt.Errorf("device mix: the shares add up to %v, not 1", sum)
	}
	return nil
}

// String is the mix as Set reads it.
func (m DeviceMix) String() string {
	parts := make([]string, len(m))
	for i, share := range m {
		parts[i] = strconv.FormatFloat(share, 'g', -1, 64)
	}
	return strings.Join(parts, ",")
}

// Set parses comma-separated shares, "0.3,0.4,0.2,0.1"; "" clears the mix.
func (m *DeviceMix) Set(s string) error {
	if strings.TrimSpace(s) == "" {
		*m = nil
		return nil
	}
	var mix DeviceMix
	for part := range strings.SplitSeq(s, ",") {
		share, err := strconv.ParseFloat(strings.TrimSpace(part), 64)
		if err != nil {
			return errors.New("device mix: want shares like 0.3,0.4,0.2,0.1")
		}
		mix = append(mix, share)
	}
	if err := mix.Validate(); err != nil {
		return err
	}
	*m = mix
	return nil
}

// devices draws how many devices the user with key has (the index of the
// share its draw falls in) and each one's kind.
func (m DeviceMix) devices(userKey string) []reauth.DeviceKind {
	draw, n, cum := fraction("mix/"+userKey), len(m)-1, 0.0
	for i, share := range m {
		if cum += share; draw < cum {
			n = i
			break
		}
	}
	kinds := make([]reauth.DeviceKind, n)
	for k := range kinds {
		kinds[k] = reauth.DeviceKinds[pick(fmt.Sprintf("%s/%d", userKey, k+1), "kind", len(reauth.DeviceKinds))]
	}
	return kinds
}
