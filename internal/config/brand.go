package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
)

// brandFile is the JSON form of BRAND_FILE: the brand settings in one file,
// e.g. {"name": "Stadtwerke Musterstadt", "color": "#0b6e4f"}.
type brandFile struct {
	Name         string `json:"name"`
	LogoURL      string `json:"logo_url"`
	Color        string `json:"color"`
	SupportURL   string `json:"support_url"`
	SupportEmail string `json:"support_email"`
}

// loadBrandFile fills the brand from BRAND_FILE, when it is set: each field
// the file has, unless its own variable (BRAND_NAME, ... or NAME_FILE) is
// set, which wins.
func (c *Config) loadBrandFile(e *env) {
	if c.BrandFile == "" {
		return
	}
	b, err := os.ReadFile(c.BrandFile)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("BRAND_FILE: cannot read the file: %w", err))
		return
	}
	var f brandFile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		e.errs = append(e.errs, fmt.Errorf("BRAND_FILE: want {\"name\", \"logo_url\", \"color\", \"support_url\", \"support_email\"}: %w", err))
		return
	}
	for _, x := range []struct {
		name     string
		from     string
		variable *string
	}{
		{"BRAND_NAME", f.Name, &c.Brand.Name}, {"BRAND_LOGO_URL", f.LogoURL, &c.Brand.LogoURL},
		{"BRAND_COLOR", f.Color, &c.Brand.Color}, {"SUPPORT_URL", f.SupportURL, &c.Brand.SupportURL},
		{"SUPPORT_EMAIL", f.SupportEmail, &c.Brand.SupportEmail},
	} {
		if x.from != "" && e.getenv(x.name) == "" && e.getenv(x.name+"_FILE") == "" {
			*x.variable = x.from
		}
	}
}
