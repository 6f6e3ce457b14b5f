package urlx

import (
	"errors"
	"slices"
	"strconv"
	"strings"
)

// LiteURL is a parsed URL with net/url.URL's fields, less Opaque-only and
// OmitHost details: [scheme:][//[userinfo@]host][/]path[?query][#fragment].
type LiteURL struct {
	Scheme      string
	Opaque      string        // the rest of a URL with a scheme and no leading slash ("mailto:x")
	User        *LiteUserinfo // nil when the URL has none
	Host        string        // host or host:port
	Path        string        // the path, unescaped
	RawPath     string        // the path as written, when it differs from Path's default escaping
	ForceQuery  bool          // a "?" with an empty query
	RawQuery    string        // the query, without "?"
	Fragment    string        // the fragment, unescaped
	RawFragment string        // the fragment as written, when it differs from Fragment's default escaping
}

// LiteUserinfo is the user information of a URL ("user:password").
type LiteUserinfo struct {
	username, password string
	passwordSet        bool
}

// Username returns the user name.
func (u *LiteUserinfo) Username() string {
	if u == nil {
		return ""
	}
	return u.username
}

// Password returns the password and whether one is set.
func (u *LiteUserinfo) Password() (string, bool) {
	if u == nil {
		return "", false
	}
	return u.password, u.passwordSet
}

// String returns "user[:password]", escaped.
func (u *LiteUserinfo) String() string {
	if u == nil {
		return ""
	}
	s := escape(u.username, modeUserPassword)
	if u.passwordSet {
		s += ":" + escape(u.password, modeUserPassword)
	}
	return s
}

// LiteError is an error of parsing a URL: Op, the URL and the cause.
type LiteError struct {
	Op  string
	URL string
	Err error
}

func (e *LiteError) Error() string { return e.Op + " " + strconv.Quote(e.URL) + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *LiteError) Unwrap() error { return e.Err }

// Timeout reports whether the cause is a timeout.
func (e *LiteError) Timeout() bool {
	t, ok := e.Err.(interface{ Timeout() bool })
	return ok && t.Timeout()
}

// Temporary reports whether the cause is temporary.
func (e *LiteError) Temporary() bool {
	t, ok := e.Err.(interface{ Temporary() bool })
	return ok && t.Temporary()
}

type escapeMode int

const (
	modePath escapeMode = iota
	modePathSegment
	modeHost
	modeUserPassword
	modeQueryComponent
	modeFragment
)

// keep reports whether c stays as it is in a component of the mode (the
// rules of RFC 3986 as net/url applies them).
func keep(c byte, mode escapeMode) bool {
	if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
		return true
	}
	if mode == modeHost {
		switch c {
		case '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '[', ']', '<', '>', '"':
			return true
		}
	}
	switch c {
	case '-', '_', '.', '~':
		return true
	case '$', '&', '+', ',', '/', ':', ';', '=', '?', '@':
		switch mode {
		case modePath:
			return c != '?'
		case modePathSegment:
			return c != '/' && c != ';' && c != ',' && c != '?'
		case modeUserPassword:
			return c != '@' && c != '/' && c != '?' && c != ':'
		case modeQueryComponent:
			return false
		case modeFragment:
			return true
		}
	}
	if mode == modeFragment {
		switch c {
		case '!', '(', ')', '*':
			return true
		}
	}
	return false
}

const hexDigits = "0123456789ABCDEF"

func escape(s string, mode escapeMode) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !keep(s[i], mode) && !(s[i] == ' ' && mode == modeQueryComponent) {
			n++
		}
	}
	if n == 0 && !(mode == modeQueryComponent && strings.IndexByte(s, ' ') >= 0) {
		return s
	}
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' && mode == modeQueryComponent:
			b = append(b, '+')
		case keep(c, mode):
			b = append(b, c)
		default:
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&15])
		}
	}
	return string(b)
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// unescape decodes %XX (and, in a query component, '+' as a space).
func unescape(s string, mode escapeMode) (string, error) {
	if strings.IndexByte(s, '%') < 0 && (mode != modeQueryComponent || strings.IndexByte(s, '+') < 0) {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '%':
			if i+2 >= len(s) {
				return "", errors.New("invalid URL escape " + strconv.Quote(s[i:]))
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return "", errors.New("invalid URL escape " + strconv.Quote(s[i:i+3]))
			}
			b = append(b, hi<<4|lo)
			i += 2
		case c == '+' && mode == modeQueryComponent:
			b = append(b, ' ')
		default:
			b = append(b, c)
		}
	}
	return string(b), nil
}

// LitePathEscape escapes s for use as one path segment.
func LitePathEscape(s string) string { return escape(s, modePathSegment) }

// LiteQueryEscape escapes s for use in a query (spaces as '+').
func LiteQueryEscape(s string) string { return escape(s, modeQueryComponent) }

// LiteParse parses an absolute or relative URL.
func LiteParse(rawURL string) (*LiteURL, error) {
	u, frag, hasFrag := strings.Cut(rawURL, "#")
	url, err := parse(u)
	if err != nil {
		return nil, &LiteError{Op: "parse", URL: u, Err: err}
	}
	if hasFrag {
		f, err := unescape(frag, modeFragment)
		if err != nil {
			return nil, &LiteError{Op: "parse", URL: rawURL, Err: err}
		}
		url.Fragment = f
		if escape(f, modeFragment) != frag {
			url.RawFragment = frag
		}
	}
	return url, nil
}

func parse(raw string) (*LiteURL, error) {
	for i := 0; i < len(raw); i++ {
		if raw[i] < ' ' || raw[i] == 0x7f {
			return nil, errors.New("net/url: invalid control character in URL")
		}
	}
	u := &LiteURL{}
	if raw == "*" {
		u.Path = "*"
		return u, nil
	}
	rest := raw
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' {
			continue
		}
		if '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.' {
			if i == 0 {
				break
			}
			continue
		}
		if c == ':' {
			if i == 0 {
				return nil, errors.New("missing protocol scheme")
			}
			u.Scheme, rest = strings.ToLower(raw[:i]), raw[i+1:]
		}
		break
	}
	if strings.HasSuffix(rest, "?") && strings.Count(rest, "?") == 1 {
		u.ForceQuery = true
		rest = rest[:len(rest)-1]
	} else {
		rest, u.RawQuery, _ = strings.Cut(rest, "?")
	}
	if !strings.HasPrefix(rest, "/") {
		if u.Scheme != "" {
			u.Opaque = rest
			return u, nil
		}
		if seg, _, _ := strings.Cut(rest, "/"); strings.Contains(seg, ":") {
			return nil, errors.New("first path segment in URL cannot contain colon")
		}
	}
	if (u.Scheme != "" || !strings.HasPrefix(rest, "///")) && strings.HasPrefix(rest, "//") {
		authority := rest[2:]
		rest = ""
		if i := strings.IndexByte(authority, '/'); i >= 0 {
			authority, rest = authority[:i], authority[i:]
		}
		if err := u.parseAuthority(authority); err != nil {
			return nil, err
		}
	}
	if err := u.setPath(rest); err != nil {
		return nil, err
	}
	return u, nil
}

func (u *LiteURL) parseAuthority(authority string) error {
	i := strings.LastIndexByte(authority, '@')
	hostPart := authority
	if i >= 0 {
		hostPart = authority[i+1:]
	}
	host, err := parseHost(hostPart)
	if err != nil {
		return err
	}
	u.Host = host
	if i < 0 {
		return nil
	}
	info := authority[:i]
	for j := 0; j < len(info); j++ {
		c := info[j]
		if !keep(c, modeUserPassword) && c != ':' && c != '%' && !strings.ContainsRune("!$&'()*+,;=@", rune(c)) {
			return errors.New("net/url: invalid userinfo")
		}
	}
	name, pass, hasPass := strings.Cut(info, ":")
	if name, err = unescape(name, modeUserPassword); err != nil {
		return err
	}
	ui := &LiteUserinfo{username: name}
	if hasPass {
		if pass, err = unescape(pass, modeUserPassword); err != nil {
			return err
		}
		ui.password, ui.passwordSet = pass, true
	}
	u.User = ui
	return nil
}

// parseHost checks host[:port] ("[v6]:port" for IPv6 literals).
func parseHost(host string) (string, error) {
	if strings.HasPrefix(host, "[") {
		i := strings.LastIndexByte(host, ']')
		if i < 0 {
			return "", errors.New("missing ']' in host")
		}
		if !validPort(host[i+1:]) {
			return "", errors.New("invalid port " + strconv.Quote(host[i+1:]) + " after host")
		}
		return unescape(host, modeHost) // an IPv6 zone is written %25zone
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !validPort(host[i:]) {
		return "", errors.New("invalid port " + strconv.Quote(host[i:]) + " after host")
	}
	if strings.IndexByte(host, '%') >= 0 {
		return "", errors.New("invalid URL escape in host " + strconv.Quote(host))
	}
	for i := 0; i < len(host); i++ {
		if c := host[i]; c < 0x80 && !keep(c, modeHost) && c != '-' {
			return "", errors.New("invalid character " + strconv.Quote(host[i:i+1]) + " in host name")
		}
	}
	return host, nil
}

// validPort reports whether p is "" or ":" followed by digits.
func validPort(p string) bool {
	if p == "" {
		return true
	}
	if p[0] != ':' {
		return false
	}
	for i := 1; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	return true
}

func (u *LiteURL) setPath(p string) error {
	path, err := unescape(p, modePath)
	if err != nil {
		return err
	}
	u.Path = path
	u.RawPath = ""
	if escape(path, modePath) != p {
		u.RawPath = p
	}
	return nil
}

// EscapedPath returns the path as written in the URL: RawPath when it is a
// valid escaping of Path, else Path escaped.
func (u *LiteURL) EscapedPath() string {
	if u.RawPath != "" && validEncoded(u.RawPath, modePath) {
		if p, err := unescape(u.RawPath, modePath); err == nil && p == u.Path {
			return u.RawPath
		}
	}
	if u.Path == "*" {
		return "*"
	}
	return escape(u.Path, modePath)
}

// validEncoded reports whether s is a valid escaped component of the mode.
func validEncoded(s string, mode escapeMode) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '!', '$', '&', '\'', '(', ')', '*', '+', ',', ';', '=', ':', '@', '[', ']', '%':
		default:
			if !keep(c, mode) {
				return false
			}
		}
	}
	return true
}

// EscapedFragment returns the fragment as written in the URL.
func (u *LiteURL) EscapedFragment() string {
	if u.RawFragment != "" && validEncoded(u.RawFragment, modeFragment) {
		if f, err := unescape(u.RawFragment, modeFragment); err == nil && f == u.Fragment {
			return u.RawFragment
		}
	}
	return escape(u.Fragment, modeFragment)
}

// IsAbs reports whether the URL has a scheme.
func (u *LiteURL) IsAbs() bool { return u.Scheme != "" }

// Hostname returns the host without its port or IPv6 brackets.
func (u *LiteURL) Hostname() string {
	h := u.Host
	if strings.HasPrefix(h, "[") {
		if i := strings.LastIndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && validPort(h[i:]) {
		return h[:i]
	}
	return h
}

// Query parses RawQuery, dropping malformed pairs.
func (u *LiteURL) Query() LiteValues {
	v, _ := LiteParseQuery(u.RawQuery)
	return v
}

// String reassembles the URL.
func (u *LiteURL) String() string {
	var b strings.Builder
	if u.Scheme != "" {
		b.WriteString(u.Scheme)
		b.WriteByte(':')
	}
	if u.Opaque != "" {
		b.WriteString(u.Opaque)
	} else {
		if u.Scheme != "" || u.Host != "" || u.User != nil {
			if u.Host != "" || u.Path != "" || u.User != nil {
				b.WriteString("//")
			}
			if u.User != nil {
				b.WriteString(u.User.String())
				b.WriteByte('@')
			}
			b.WriteString(escape(u.Host, modeHost))
		}
		path := u.EscapedPath()
		if path != "" && path[0] != '/' && u.Host != "" {
			b.WriteByte('/')
		}
		if b.Len() == 0 {
			if seg, _, _ := strings.Cut(path, "/"); strings.Contains(seg, ":") {
				b.WriteString("./")
			}
		}
		b.WriteString(path)
	}
	if u.ForceQuery || u.RawQuery != "" {
		b.WriteByte('?')
		b.WriteString(u.RawQuery)
	}
	if u.Fragment != "" {
		b.WriteByte('#')
		b.WriteString(u.EscapedFragment())
	}
	return b.String()
}

// ResolveReference resolves ref against u as RFC 3986 section 5.2 says.
func (u *LiteURL) ResolveReference(ref *LiteURL) *LiteURL {
	url := *ref
	if ref.Scheme == "" {
		url.Scheme = u.Scheme
	}
	if ref.Scheme != "" || ref.Host != "" || ref.User != nil {
		_ = url.setPath(resolvePath(ref.EscapedPath(), ""))
		return &url
	}
	if ref.Opaque != "" {
		url.User, url.Host, url.Path, url.RawPath = nil, "", "", ""
		return &url
	}
	if ref.Path == "" && !ref.ForceQuery && ref.RawQuery == "" {
		url.RawQuery = u.RawQuery
		if ref.Fragment == "" {
			url.Fragment, url.RawFragment = u.Fragment, u.RawFragment
		}
	}
	if ref.Path == "" && u.Opaque != "" {
		url.Opaque, url.User, url.Host, url.Path, url.RawPath = u.Opaque, nil, "", "", ""
		return &url
	}
	url.Host, url.User = u.Host, u.User
	_ = url.setPath(resolvePath(u.EscapedPath(), ref.EscapedPath()))
	return &url
}

// resolvePath merges ref into base and removes "." and ".." segments
// (RFC 3986 section 5.2.4), keeping net/url's handling of empty segments.
func resolvePath(base, ref string) string {
	full := ref
	switch {
	case ref == "":
		full = base
	case ref[0] != '/':
		full = base[:strings.LastIndexByte(base, '/')+1] + ref
	}
	if full == "" {
		return ""
	}
	out := []byte{'/'}
	empty := true // nothing written after the leading slash
	var seg string
	for rest, more := full, true; more; {
		seg, rest, more = strings.Cut(rest, "/")
		switch seg {
		case ".":
			empty = false
		case "..":
			if i := strings.LastIndexByte(string(out[1:]), '/'); i >= 0 {
				out = out[:i+1]
			} else {
				out, empty = out[:1], true
			}
		default:
			if !empty {
				out = append(out, '/')
			}
			out = append(out, seg...)
			empty = false
		}
	}
	if seg == "." || seg == ".." {
		out = append(out, '/')
	}
	if len(out) > 1 && out[1] == '/' {
		out = out[1:]
	}
	return string(out)
}

// LiteValues maps a query's keys to their values.
type LiteValues map[string][]string

// Get returns the first value of key, or "".
func (v LiteValues) Get(key string) string {
	if vs := v[key]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// Set replaces the values of key.
func (v LiteValues) Set(key, value string) { v[key] = []string{value} }

// Add appends a value to key.
func (v LiteValues) Add(key, value string) { v[key] = append(v[key], value) }

// Del deletes key.
func (v LiteValues) Del(key string) { delete(v, key) }

// Has reports whether key is set.
func (v LiteValues) Has(key string) bool {
	_, ok := v[key]
	return ok
}

// Encode writes the values as "a=1&b=2", sorted by key.
func (v LiteValues) Encode() string {
	if len(v) == 0 {
		return ""
	}
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		ek := LiteQueryEscape(k)
		for _, x := range v[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(ek)
			b.WriteByte('=')
			b.WriteString(LiteQueryEscape(x))
		}
	}
	return b.String()
}

// LiteParseQuery parses "a=1&b=2"; it returns the first error met and the
// pairs that parsed.
func LiteParseQuery(query string) (LiteValues, error) {
	v := LiteValues{}
	var first error
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		if strings.Contains(pair, ";") {
			if first == nil {
				first = errors.New("invalid semicolon separator in query")
			}
			continue
		}
		if pair == "" {
			continue
		}
		key, value, _ := strings.Cut(pair, "=")
		k, err := unescape(key, modeQueryComponent)
		if err == nil {
			value, err = unescape(value, modeQueryComponent)
		}
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		v[k] = append(v[k], value)
	}
	return v, first
}
