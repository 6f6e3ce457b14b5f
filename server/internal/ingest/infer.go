package ingest

import (
	"strconv"
	"strings"

	"github.com/bitkit-dev/bitkit/internal/jsonx"
)

// Kind is what a source format knows about a cell before inference.
type Kind uint8

// Cell kinds. CSV and spreadsheet cells are Text (or Null when empty); JSON
// keeps its scalar kinds; SQLite BLOBs are Bytes.
const (
	Null Kind = iota
	Text
	Number
	Bool
	JSON
	Bytes
)

// Cell is one value of a row. S holds the text (for Bytes: the raw bytes).
type Cell struct {
	Kind Kind
	S    string
}

// typeSet is a bit set of the PostgreSQL types a column may still have.
type typeSet uint16

const (
	tBool typeSet = 1 << iota
	tInt4
	tInt8
	tNumeric
	tFloat8
	tDate
	tTimestamp
	tTimestamptz
	tTime
	tUUID
	tJSONB
	tBytea
	tText

	tAll = tText<<1 - 1
)

// typeOrder lists the types from most to least specific; the first type in
// a column's set is the inferred type. Whole numbers are integer, or bigint
// when a value is outside integer's range, never smallint: a column of small
// ids would otherwise refuse the next row above 32767.
var typeOrder = []struct {
	t    typeSet
	name string
}{
	{tBool, "boolean"}, {tInt4, "integer"}, {tInt8, "bigint"},
	{tNumeric, "numeric"}, {tFloat8, "double precision"}, {tDate, "date"},
	{tTimestamp, "timestamp without time zone"}, {tTimestamptz, "timestamp with time zone"},
	{tTime, "time without time zone"}, {tUUID, "uuid"}, {tJSONB, "jsonb"}, {tBytea, "bytea"},
	{tText, "text"},
}

// typeName returns the PostgreSQL type for a column whose values allow s
// (text when the column held no value at all).
func typeName(s typeSet, seen bool) string {
	if !seen {
		return "text"
	}
	for _, o := range typeOrder {
		if s&o.t != 0 {
			return o.name
		}
	}
	return "text"
}

// classify returns the set of types that can hold c.
func classify(c Cell) typeSet {
	switch c.Kind {
	case Null:
		return tAll
	case Bool:
		return tBool | tText
	case JSON:
		return tJSONB | tText
	case Bytes:
		return tBytea | tText
	case Number:
		return classifyNumber(c.S) | tText
	}
	return classifyText(c.S)
}

// classifyWithin returns classify(c) & allowed, testing only the types in
// allowed (a column narrowed to a few types, or to text, is cheap to
// follow).
func classifyWithin(c Cell, allowed typeSet) typeSet {
	if c.Kind != Text {
		return classify(c) & allowed
	}
	s := c.S
	if allowed&^tText == 0 || s == "" {
		return tText & allowed
	}
	set := tText
	switch c := s[0]; {
	case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
		if allowed&(tInt4|tInt8|tNumeric|tFloat8) != 0 {
			set |= classifyNumber(s)
		}
		if allowed&(tDate|tTimestamp|tTimestamptz) != 0 && len(s) >= 10 && c >= '0' && c <= '9' {
			set |= classifyDateTime(s)
		}
		if allowed&tTime != 0 && len(s) >= 4 && c >= '0' && c <= '9' && isTime(s) {
			set |= tTime
		}
	case c == '{' || c == '[':
		if allowed&tJSONB != 0 && jsonx.Valid([]byte(s)) {
			set |= tJSONB
		}
	}
	if allowed&tBool != 0 && len(s) <= 5 && isBool(s) {
		set |= tBool
	}
	if allowed&tUUID != 0 && len(s) == 36 && isUUID(s) {
		set |= tUUID
	}
	return set & allowed
}

// classifyText returns the types a text value parses as (always with text).
func classifyText(s string) typeSet {
	if s == "" {
		return tText
	}
	set := tText
	switch c := s[0]; {
	case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
		set |= classifyNumber(s)
		if len(s) >= 10 && c >= '0' && c <= '9' {
			set |= classifyDateTime(s)
		}
		if len(s) >= 4 && c >= '0' && c <= '9' {
			if isTime(s) {
				set |= tTime
			}
		}
	case c == '{' || c == '[':
		if jsonx.Valid([]byte(s)) {
			set |= tJSONB
		}
	}
	if len(s) <= 5 && isBool(s) {
		set |= tBool
	}
	if len(s) == 36 && isUUID(s) {
		set |= tUUID
	}
	return set
}

func isBool(s string) bool {
	switch strings.ToLower(s) {
	case "true", "false", "t", "f", "yes", "no", "y", "n":
		return true
	}
	return false
}

func isUUID(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

// classifyNumber handles integers, exact decimals and floats. Integers with
// leading zeros ("007") are text (codes, not numbers).
func classifyNumber(s string) typeSet {
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	intDigits := i - start
	if intDigits > 1 && s[start] == '0' {
		return 0
	}
	if i == len(s) {
		if intDigits == 0 {
			return 0
		}
		v, err := strconv.ParseInt(s, 10, 64)
		switch {
		case err != nil:
			return tNumeric | tFloat8
		case v >= -2147483648 && v <= 2147483647:
			return tInt4 | tInt8 | tNumeric | tFloat8
		default:
			return tInt8 | tNumeric | tFloat8
		}
	}
	frac := 0
	if s[i] == '.' {
		i++
		fs := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		frac = i - fs
	}
	if intDigits+frac == 0 {
		return 0
	}
	if i == len(s) {
		return tNumeric | tFloat8
	}
	if s[i] != 'e' && s[i] != 'E' {
		return 0
	}
	i++
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		i++
	}
	es := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i != len(s) || i == es {
		return 0
	}
	if _, err := strconv.ParseFloat(s, 64); err != nil {
		return 0 // out of range for double precision
	}
	return tFloat8
}

// classifyDateTime recognises ISO 8601 dates and timestamps:
// YYYY-MM-DD, YYYY-MM-DD[T ]HH:MM[:SS[.ffffff]] and the same followed by Z or
// an offset (±HH, ±HHMM, ±HH:MM).
func classifyDateTime(s string) typeSet {
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return 0
	}
	if !validDate(s[:10]) {
		return 0
	}
	if len(s) == 10 {
		return tDate | tTimestamp | tTimestamptz
	}
	if s[10] != 'T' && s[10] != ' ' {
		return 0
	}
	rest := s[11:]
	// split off a zone
	zone := ""
	if strings.HasSuffix(rest, "Z") || strings.HasSuffix(rest, "z") {
		zone, rest = "Z", rest[:len(rest)-1]
	} else if j := strings.LastIndexAny(rest, "+-"); j > 0 {
		zone, rest = rest[j:], rest[:j]
		if !isOffset(zone) {
			return 0
		}
	}
	if !isTime(rest) {
		return 0
	}
	if zone != "" {
		return tTimestamptz
	}
	return tTimestamp | tTimestamptz
}

// validDate checks YYYY-MM-DD (year 1–9999, a real day of that month).
func validDate(s string) bool {
	if !digits(s[:4]) || !digits(s[5:7]) || !digits(s[8:10]) {
		return false
	}
	y, _ := strconv.Atoi(s[:4])
	m, _ := strconv.Atoi(s[5:7])
	d, _ := strconv.Atoi(s[8:10])
	if y < 1 || m < 1 || m > 12 || d < 1 {
		return false
	}
	days := [13]int{0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[m]
	if m == 2 && y%4 == 0 && (y%100 != 0 || y%400 == 0) {
		days = 29
	}
	return d <= days
}

func isOffset(z string) bool {
	d := z[1:]
	switch len(d) {
	case 2:
	case 4:
	case 5:
		if d[2] != ':' {
			return false
		}
		d = d[:2] + d[3:]
	default:
		return false
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return false
		}
	}
	h, _ := strconv.Atoi(d[:2])
	if h > 15 {
		return false
	}
	if len(d) == 4 {
		m, _ := strconv.Atoi(d[2:])
		return m < 60
	}
	return true
}

// isTime recognises HH:MM, HH:MM:SS and HH:MM:SS.f (1–6 digits).
func isTime(s string) bool {
	if len(s) != 5 && len(s) != 8 && !(len(s) >= 10 && len(s) <= 15 && s[8] == '.') {
		return false
	}
	if s[2] != ':' || !digits(s[:2]) || !digits(s[3:5]) {
		return false
	}
	h, _ := strconv.Atoi(s[:2])
	m, _ := strconv.Atoi(s[3:5])
	if h > 23 || m > 59 {
		return false
	}
	if len(s) == 5 {
		return true
	}
	if s[5] != ':' || !digits(s[6:8]) {
		return false
	}
	if sec, _ := strconv.Atoi(s[6:8]); sec > 59 {
		return false
	}
	return len(s) == 8 || digits(s[9:])
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Inferrer accumulates the possible types of each column over many rows.
// Row 0 is kept apart, so that the header decision can be taken at the end.
// The zero value is ready to use.
type Inferrer struct {
	first     []Cell
	firstSet  []typeSet
	rest      []typeSet
	restSeen  []bool
	firstSeen []bool
	rows      int64
}

// Add feeds one row.
func (in *Inferrer) Add(row []Cell) {
	if in.rows == 0 {
		in.first = append([]Cell(nil), row...)
		for _, c := range row {
			in.firstSet = append(in.firstSet, classify(c))
			in.firstSeen = append(in.firstSeen, c.Kind != Null)
		}
		in.rows++
		return
	}
	in.rows++
	for len(in.rest) < len(row) {
		in.rest = append(in.rest, tAll)
		in.restSeen = append(in.restSeen, false)
	}
	for i, c := range row {
		if c.Kind == Null {
			continue
		}
		in.rest[i] = classifyWithin(c, in.rest[i])
		in.restSeen[i] = true
	}
}

// Rows returns how many rows were added.
func (in *Inferrer) Rows() int64 { return in.rows }

// Width returns the largest row width seen.
func (in *Inferrer) Width() int { return max(len(in.first), len(in.rest)) }

// LooksLikeHeader applies the auto header rule: the first row is a header
// when every one of its cells is non-empty text that parses as nothing but
// text (no number, boolean, date, time, uuid or JSON) and the cells are
// distinct.
func (in *Inferrer) LooksLikeHeader() bool {
	if in.rows == 0 || len(in.first) == 0 {
		return false
	}
	seen := map[string]bool{}
	for i, c := range in.first {
		if c.Kind != Text || strings.TrimSpace(c.S) == "" || in.firstSet[i] != tText {
			return false
		}
		k := strings.ToLower(strings.TrimSpace(c.S))
		if seen[k] {
			return false
		}
		seen[k] = true
	}
	return true
}

// Types returns the inferred PostgreSQL type of each of width columns, with
// or without row 0.
func (in *Inferrer) Types(width int, header bool) []string {
	out := make([]string, width)
	for i := range out {
		set, seen := typeSet(tAll), false
		if i < len(in.rest) {
			set, seen = in.rest[i], in.restSeen[i]
		}
		if !header && i < len(in.firstSet) {
			set &= in.firstSet[i]
			seen = seen || in.firstSeen[i]
		}
		out[i] = typeName(set, seen)
	}
	return out
}

// Seen reports for each of width columns whether it holds a value, with or
// without row 0.
func (in *Inferrer) Seen(width int, header bool) []bool {
	out := make([]bool, width)
	for i := range out {
		if i < len(in.restSeen) {
			out[i] = in.restSeen[i]
		}
		if !header && i < len(in.firstSeen) {
			out[i] = out[i] || in.firstSeen[i]
		}
	}
	return out
}

// First returns row 0 (the header candidate).
func (in *Inferrer) First() []Cell { return in.first }

// InferType returns the PostgreSQL type inferred for a single text value, as
// a CSV cell would be classified ("text" for the empty string). It exposes
// the per-value rule for tests, fuzzing and documentation.
func InferType(s string) string {
	if s == "" {
		return "text"
	}
	return typeName(classifyText(s), true)
}
