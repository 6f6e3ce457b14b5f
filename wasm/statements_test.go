//go:build js && wasm

package main

import "testing"

func TestCountStatements(t *testing.T) {
	t.Parallel()
	for sql, want := range map[string]int{
		"select 1":                          1,
		"select 1;":                         1,
		"  select 1 ;  ; ":                  1,
		"select 1; select 2":                2,
		"select ';'":                        1,
		"select 'it''s; fine'":              1,
		`select E'a\'; b'`:                  1,
		`select 'a\'; select 2`:             2, // standard strings: the backslash is plain
		`select ";" from t`:                 1,
		"select $$a;b$$":                    1,
		"select $f$ ; $$ ; $f$; select 2":   2,
		"select $1; select $2":              2,
		"select 1 -- ; not a statement\n":   1,
		"select 1 /* ; /* nested ; */ ; */": 1,
		"-- only a comment":                 0,
		"":                                  0,
		";;":                                0,
		"create function f() returns int as $body$ begin return 1; end $body$ language plpgsql; select f()": 2,
	} {
		if got := countStatements(sql); got != want {
			t.Errorf("countStatements(%q) = %d, want %d", sql, got, want)
		}
	}
}
