package urlx

import (
	"net/url"
	"reflect"
	"testing"
)

// The inputs the client meets (endpoints, API paths, download URLs,
// sanitized request URLs) and malformed ones: LiteParse must agree with
// net/url on success or failure and, on success, on every field, String,
// EscapedPath, Hostname and ResolveReference against an endpoint.
var urlInputs = []string{
	"https://bitd.example.com", "http://127.0.0.1:8080", "http://127.0.0.1:8080/", "https://host/base/v2beta",
	"http://[::1]:9000/x", "http://[fe80::1%25en0]:80/", "https://u:p@host/p?q=1#frag", "https://user@host",
	"http://host/a%20b/c%2Fd", "http://host/a b", "http://host/ä/€?x=ü", "http://host/a%2g", "http://host:abc/",
	"http://host:/", "http://[::1/", "://x", "1http://x", "http://host/p?key=secret&a=b c", "http://host/p?",
	"http://host/p?a=1;b=2", "/v2beta/export/x/file.csv?sig=abc", "relative/file.csv", "../up", "./a:b",
	"a:b/c", "mailto:x@y", "http://host/a/./b/../c", "http://host#a%20b", "http://host/#a b", "//host/p",
	"///p", "http://ho st/", "http://host/\x7f", "http://host/%", "*", "", "http://host/p%3Fq?x=%zz",
	"http://host/a;b,c$d&e+f=g@h:i", "HTTPS://Host/", "http://h/~a_b-c.d!e'f(g)h*i", "http://host/a/b/../../../c", "../../x", "a/./b/", "http://host/a/..", "..", ".", "/a//b/../c",
}

func TestLiteParseMatchesNetURL(t *testing.T) {
	base, _ := url.Parse("https://bitd.example.com/root/v2beta")
	lbase, _ := LiteParse("https://bitd.example.com/root/v2beta")
	for _, in := range urlInputs {
		want, werr := url.Parse(in)
		got, gerr := LiteParse(in)
		if (werr == nil) != (gerr == nil) {
			t.Errorf("Parse(%q): net/url error %v, lite error %v", in, werr, gerr)
			continue
		}
		if werr != nil {
			if _, ok := gerr.(*LiteError); !ok {
				t.Errorf("Parse(%q): lite error %T, want *LiteError", in, gerr)
			}
			continue
		}
		w := []any{want.Scheme, want.Opaque, want.User.String(), want.Host, want.Path, want.RawPath, want.ForceQuery, want.RawQuery, want.Fragment, want.RawFragment,
			want.String(), want.EscapedPath(), want.Hostname(), want.IsAbs(), base.ResolveReference(want).String()}
		g := []any{got.Scheme, got.Opaque, got.User.String(), got.Host, got.Path, got.RawPath, got.ForceQuery, got.RawQuery, got.Fragment, got.RawFragment,
			got.String(), got.EscapedPath(), got.Hostname(), got.IsAbs(), lbase.ResolveReference(got).String()}
		if !reflect.DeepEqual(w, g) {
			t.Errorf("Parse(%q):\n net/url %q\n lite    %q", in, w, g)
		}
	}
}

// TestLiteURLBuilt: a URL built as core builds request URLs (a Path holding
// escaped segments, RawPath cleared, a query from Values) prints the same.
func TestLiteURLBuilt(t *testing.T) {
	for _, seg := range []string{"plain", "a b", "a/b", "ü;x,y?z", "100%"} {
		w, _ := url.Parse("https://h:1/base")
		g, _ := LiteParse("https://h:1/base")
		w.Path += "/v2beta/db/" + url.PathEscape(seg)
		g.Path += "/v2beta/db/" + LitePathEscape(seg)
		w.RawPath, g.RawPath = "", ""
		w.RawQuery = url.Values{"account_name": {seg}, "b": {"1", "2"}}.Encode()
		g.RawQuery = LiteValues{"account_name": {seg}, "b": {"1", "2"}}.Encode()
		if w.String() != g.String() {
			t.Errorf("%q: net/url %s, lite %s", seg, w, g)
		}
	}
}

func TestLiteEscapeAndQuery(t *testing.T) {
	var all []byte
	for c := 0; c < 256; c++ {
		all = append(all, byte(c))
	}
	s := string(all)
	if got, want := LitePathEscape(s), url.PathEscape(s); got != want {
		t.Errorf("PathEscape:\n lite    %q\n net/url %q", got, want)
	}
	if got, want := LiteQueryEscape(s), url.QueryEscape(s); got != want {
		t.Errorf("QueryEscape:\n lite    %q\n net/url %q", got, want)
	}
	for _, q := range []string{"a=1&b=2&a=3", "key=x%20y&t=a+b", "bad=%zz&ok=1", "a=1;b=2", "", "&&x", "k", "=v"} {
		want, werr := url.ParseQuery(q)
		got, gerr := LiteParseQuery(q)
		if (werr == nil) != (gerr == nil) || !reflect.DeepEqual(map[string][]string(want), map[string][]string(got)) {
			t.Errorf("ParseQuery(%q): net/url %v %v, lite %v %v", q, want, werr, got, gerr)
		}
		if werr == nil && want.Encode() != got.Encode() {
			t.Errorf("Encode(%q): net/url %q, lite %q", q, want.Encode(), got.Encode())
		}
	}
}
