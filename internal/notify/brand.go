package notify

import (
	"errors"
	"fmt"
	"math"
	"net/mail"
	"net/url"
	"regexp"
	"strconv"
)

// BrandColorDefault is the colour of the buttons when BRAND_COLOR is not
// set: a blue that white text reads well on.
const BrandColorDefault = "#1a73e8"

// Brand is the partner's identity in every message and end user's page:
// energy companies write to their customers in their own name. Every field
// may be empty: a message without a name has no header, one without support
// contact no footer line for it.
type Brand struct {
	Name         string // BRAND_NAME, e.g. "Stadtwerke Musterstadt"
	LogoURL      string // BRAND_LOGO_URL; an https URL of an image about 40 px high
	Color        string // BRAND_COLOR, #rrggbb; "" is BrandColorDefault
	SupportURL   string // SUPPORT_URL; an https URL of the partner's help page
	SupportEmail string // SUPPORT_EMAIL; a plain address, no display name
}

var brandColorRE = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// Validate checks the brand's formats: the URLs https with a host, the
// colour #rrggbb, the email address a plain address.
func (b Brand) Validate() error {
	var errs []error
	for _, u := range []struct{ name, v string }{{"BRAND_LOGO_URL", b.LogoURL}, {"SUPPORT_URL", b.SupportURL}} {
		if u.v != "" {
			if err := httpsURL(u.v); err != nil {
				errs = append(errs, fmt.Errorf("%s %w", u.name, err))
			}
		}
	}
	if b.Color != "" && !brandColorRE.MatchString(b.Color) {
		errs = append(errs, fmt.Errorf("BRAND_COLOR must be a colour like #1a73e8, not %q", b.Color))
	}
	if b.SupportEmail != "" {
		if a, err := mail.ParseAddress(b.SupportEmail); err != nil || a.Name != "" || a.Address != b.SupportEmail {
			errs = append(errs, fmt.Errorf("SUPPORT_EMAIL must be a plain address like help@example.com, not %q", b.SupportEmail))
		}
	}
	if len(b.Name) > 80 {
		errs = append(errs, errors.New("BRAND_NAME must be at most 80 bytes"))
	}
	return errors.Join(errs...)
}

func httpsURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return errors.New("must be an https:// URL without user info")
	}
	return nil
}

// WithDefaults gives an empty Color its default.
func (b Brand) WithDefaults() Brand {
	if b.Color == "" {
		b.Color = BrandColorDefault
	}
	return b
}

// OnColor is the colour of text on the brand colour: white while it reads
// well there (WCAG's 4.5:1 contrast), else whichever of white and
// near-black contrasts more.
func (b Brand) OnColor() string {
	l := luminance(b.WithDefaults().Color)
	white, dark := 1.05/(l+0.05), (l+0.05)/0.056 // #111111 is luminance 0.0056
	if white >= 4.5 || white >= dark {
		return "#ffffff"
	}
	return "#111111"
}

// LinkColor is the colour of links on white: the brand colour when white
// text reads on it (so it reads on white too), else a dark grey.
func (b Brand) LinkColor() string {
	if b.OnColor() == "#ffffff" {
		return b.WithDefaults().Color
	}
	return "#1f2933"
}

// luminance is the relative luminance of a #rrggbb colour, 0 (black) to 1
// (white); an invalid colour counts as black.
func luminance(hex string) float64 {
	if !brandColorRE.MatchString(hex) {
		return 0
	}
	var l float64
	for i, w := range []float64{0.2126, 0.7152, 0.0722} {
		v, _ := strconv.ParseUint(hex[1+2*i:3+2*i], 16, 8)
		c := float64(v) / 255
		if c <= 0.04045 {
			c /= 12.92
		} else {
			c = math.Pow((c+0.055)/1.055, 2.4)
		}
		l += w * c
	}
	return l
}
