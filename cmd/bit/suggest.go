package main

import (
	"fmt"
	"sort"
	"strings"
)

// synonyms maps words people type out of habit from other tools to the
// command bit has for them.
var synonyms = map[string]string{
	"ls": "list", "show": "info", "get": "info", "describe": "info",
	"new": "create", "add": "create", "make": "create",
	"rm": "delete", "remove": "delete", "drop": "delete", "del": "delete", "destroy": "delete",
	"rename": "update", "set": "update", "edit": "update",
	"sql": "query", "run": "query", "exec": "query", "select": "query",
	"load": "import", "upload": "import", "copy": "import",
	"dump": "export", "download": "export", "unload": "export",
	"signin": "login", "sign-in": "login", "signout": "logout", "sign-out": "logout",
	"keys": "key", "databases": "db", "database": "db", "dbs": "db",
	"conn": "connect", "url": "connect", "dsn": "connect",
	"whoami": "account", "me": "account",
}

// unknownCommand is the usage error for a word that is not a subcommand of
// cmd, with the closest subcommand suggested.
func unknownCommand(cmd *command, word string) error {
	names := make([]string, len(cmd.subs))
	for i, s := range cmd.subs {
		names[i] = s.name
	}
	return usagef(cmd, "unknown command %q for %s%s (one of: %s)", word, cmd.fullName(), didYouMean(word, names), subNames(cmd))
}

// didYouMean returns `: did you mean "x"?` for the candidate closest to
// typed (a known synonym, else the smallest edit distance within about a
// third of the word), or "" when nothing is close.
func didYouMean(typed string, candidates []string) string {
	if best := suggest(typed, candidates); best != "" {
		return fmt.Sprintf(": did you mean %q?", best)
	}
	return ""
}

func suggest(typed string, candidates []string) string {
	dashes := typed[:len(typed)-len(strings.TrimLeft(typed, "-"))]
	word := strings.ToLower(strings.TrimLeft(typed, "-"))
	if word == "" {
		return ""
	}
	if syn, ok := synonyms[word]; ok && contains(candidates, dashes+syn) {
		return dashes + syn
	}
	best, bestDist := "", 0
	limit := max(1, (len(word)+2)/3)
	sorted := append([]string(nil), candidates...)
	sort.Strings(sorted) // ties go to the alphabetically first
	for _, c := range sorted {
		name := strings.TrimLeft(c, "-")
		d := editDistance(word, name)
		if strings.HasPrefix(name, word) && len(word) >= 2 {
			d = min(d, 1) // an unambiguous start of the word is as good as a typo
		}
		if d <= limit && (best == "" || d < bestDist) {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Damerau–Levenshtein distance (optimal string
// alignment) between a and b, counting an adjacent swap as one edit.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

// spellings lists every flag spelling the set understands, with its dashes.
func (f *flagSet) spellings() []string {
	var out []string
	for _, o := range f.opts {
		out = append(out, o.names...)
	}
	return out
}
