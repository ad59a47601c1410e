package query

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// A request's ID reaches SQL only when ValidID accepts it: never invalid
// UTF-8 (PostgreSQL would refuse the parameter with an error, a 500),
// never a control character, never longer than the recorder stores.
func FuzzValidID(f *testing.F) {
	for _, s := range []string{"alpha", "", "a/b", "\xff", "a\x00b", strings.Repeat("é", 101)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if ValidID(id) && (!utf8.ValidString(id) || len(id) > 200 || id == "" || strings.ContainsAny(id, "\x00\n\r\t")) {
			t.Fatalf("accepted %q", id)
		}
	})
}
