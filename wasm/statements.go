//go:build js && wasm

package main

import "strings"

// countStatements returns how many SQL statements sql holds: the parts
// between top-level semicolons that hold more than whitespace and comments.
// It knows PostgreSQL's lexical forms that may contain a semicolon: 'string'
// (with ” escapes), E'string' (with backslash escapes), "identifier",
// $tag$dollar quote$tag$, -- line comment and nested /* block comment */.
//
// The JS API's rule for multi-statement SQL: query() and queryStream() run
// exactly one statement, with or without params; batch() runs several in
// one transaction. Without this check bitd would answer only the last
// result of "select 1; select 2" without params, and fail with a PostgreSQL
// message about prepared statements with them.
func countStatements(sql string) int {
	n := 0
	content := false // the current statement has more than blanks/comments
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == ';':
			if content {
				n++
			}
			content = false
			i++
			continue
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
			continue
		case c == '-' && strings.HasPrefix(sql[i:], "--"):
			if j := strings.IndexByte(sql[i:], '\n'); j >= 0 {
				i += j + 1
			} else {
				i = len(sql)
			}
			continue
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			depth := 0
			for i < len(sql) {
				if strings.HasPrefix(sql[i:], "/*") {
					depth++
					i += 2
				} else if strings.HasPrefix(sql[i:], "*/") {
					depth--
					i += 2
					if depth == 0 {
						break
					}
				} else {
					i++
				}
			}
			continue
		}
		content = true
		switch {
		case c == '\'':
			backslash := i > 0 && (sql[i-1] == 'E' || sql[i-1] == 'e') && (i == 1 || !isIdentByte(sql[i-2]))
			i = skipQuoted(sql, i+1, '\'', backslash)
		case c == '"':
			i = skipQuoted(sql, i+1, '"', false)
		case c == '$' && (i == 0 || !isIdentByte(sql[i-1])):
			if tag, ok := dollarTag(sql[i:]); ok {
				if j := strings.Index(sql[i+len(tag):], tag); j >= 0 {
					i += len(tag) + j + len(tag)
				} else {
					i = len(sql)
				}
			} else {
				i++
			}
		default:
			i++
		}
	}
	if content {
		n++
	}
	return n
}

// skipQuoted returns the index after the closing quote q of a quoted text
// starting at i (a doubled quote is an escaped one).
func skipQuoted(s string, i int, q byte, backslash bool) int {
	for i < len(s) {
		switch {
		case backslash && s[i] == '\\':
			i += 2
		case s[i] == q && i+1 < len(s) && s[i+1] == q:
			i += 2
		case s[i] == q:
			return i + 1
		default:
			i++
		}
	}
	return len(s)
}

// dollarTag returns the opening "$tag$" at the start of s.
func dollarTag(s string) (string, bool) {
	for j := 1; j < len(s); j++ {
		switch c := s[j]; {
		case c == '$':
			return s[:j+1], true
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80 || (j > 1 && c >= '0' && c <= '9'):
		default:
			return "", false
		}
	}
	return "", false
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// oneStatement enforces the rule of countStatements for query and queryStream.
func oneStatement(method, sql string) error {
	switch n := countStatements(sql); n {
	case 1:
		return nil
	case 0:
		return argErrorf("bitkit: %s: the SQL text holds no statement (only blanks, comments or semicolons)", method)
	default:
		return argErrorf("bitkit: %s runs one statement, and this SQL text holds %d: use batch() to run several in one transaction", method, n)
	}
}
