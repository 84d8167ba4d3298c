package notify

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/reauth/reauth"
)

// Naming the device as its user knows it: "your SMA Sunny Boy 5.0
// inverter", "Ihren Tesla Model 3". locale.json's named_kinds holds, per
// kind, forms with namePlaceholder; they replace the kind's forms of the
// same name when the device has a name, which is built from the
// manufacturer and model Podero reported.

// namePlaceholder stands for the device's name in named_kinds forms.
const namePlaceholder = "{name}"

// maxNamePartRunes is the longest manufacturer or model used in a message;
// longer ones are cut at a word boundary.
const maxNamePartRunes = 40

// placeholderNames are values of a manufacturer or model that name nothing.
var placeholderNames = map[string]bool{
	"unknown": true, "other": true, "others": true, "n/a": true, "na": true, "none": true,
	"null": true, "nil": true, "undefined": true, "-": true, "?": true, "generic": true,
}

// forms are the kind's forms for the templates' .Device: the named ones,
// name filled in, over the plain ones; the plain ones alone when name is ""
// or the locale has no named forms for the kind.
func (ls *localeSet) forms(kind reauth.DeviceKind, name string) map[string]string {
	plain := ls.kinds[kind]
	named := ls.named[kind]
	if name == "" || len(named) == 0 {
		return plain
	}
	out := make(map[string]string, len(plain))
	for k, v := range plain {
		out[k] = v
	}
	for k, v := range named {
		out[k] = strings.ReplaceAll(v, namePlaceholder, name)
	}
	return out
}

// deviceNames returns the names m's device may be called in this locale,
// the fullest first and "" (the kind alone) last: manufacturer and model,
// then the manufacturer alone. A device without a manufacturer, or in a
// locale without named forms for its kind, has only "".
//
// A model that starts with the manufacturer ("Tesla" + "Tesla Model 3") is
// not doubled, and a manufacturer that is the kind's own noun ("Wallbox",
// a maker of wallboxes) is left out: "your Pulsar Plus wallbox".
func (ls *localeSet) deviceNames(m Message) []string {
	maker, model := cleanNamePart(m.Manufacturer), cleanNamePart(m.Model)
	if maker == "" || len(ls.named[m.DeviceKind]) == 0 {
		return []string{""}
	}
	if strings.EqualFold(maker, ls.kinds[m.DeviceKind]["noun"]) {
		if model == "" {
			return []string{""}
		}
		return []string{model, ""}
	}
	switch {
	case model == "":
		return []string{maker, ""}
	case hasWordPrefix(model, maker):
		if strings.EqualFold(model, maker) {
			return []string{maker, ""}
		}
		return []string{model, maker, ""}
	}
	return []string{maker + " " + model, maker, ""}
}

// cleanNamePart is a manufacturer or model as a message shows it: without
// control or format characters, white space collapsed, at most
// maxNamePartRunes long, and "" for a placeholder like "unknown".
func cleanNamePart(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "")
	}
	s = strings.Map(func(r rune) rune {
		switch {
		case unicode.IsSpace(r):
			return ' '
		case unicode.IsControl(r), unicode.Is(unicode.Cf, r), r == utf8.RuneError:
			return -1
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if placeholderNames[strings.ToLower(s)] {
		return ""
	}
	if utf8.RuneCountInString(s) <= maxNamePartRunes {
		return s
	}
	cut := string([]rune(s)[:maxNamePartRunes])
	if i := strings.LastIndexByte(cut, ' '); i > 0 {
		cut = cut[:i]
	}
	return strings.TrimSpace(cut)
}

// hasWordPrefix reports whether s starts with the word(s) prefix, ignoring
// case: "Tesla Model 3" starts with "Tesla", "Teslamobil" does not.
func hasWordPrefix(s, prefix string) bool {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return false
	}
	return len(s) == len(prefix) || s[len(prefix)] == ' '
}
